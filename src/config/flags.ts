/**
 * The daemon's flags: one declarative table mapping the original's flag names and environment
 * variables onto `XtcpConfig` fields (checked by the compiler), each with its default and its
 * rule; and the few flags that act on the process rather than the configuration.
 *
 * @module
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import {
  EnabledDeserializersSchema,
  type XtcpConfig,
} from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import { MARSHALLER_NAMES } from "../format/marshal.ts";
import { PARQUET_CODECS } from "../format/parquet_codec.ts";
import { KAFKA_COMPRESSIONS } from "../dest/destination.ts";
import { FULL_POLICIES } from "../dest/queue.ts";
import { parseDest } from "../dest/registry.ts";
import { decoderNames, DeserializerSpecError } from "../netlink/deserializers.ts";
import { parseStates } from "../netlink/states.ts";
import { filterBytecode } from "../netlink/filter.ts";
import { msToDuration, parseDuration } from "../util/duration.ts";
import { ConfigError } from "./config_error.ts";

/** The settable fields of XtcpConfig. */
export type ConfigFields = Omit<XtcpConfig, "$typeName" | "$unknown">;

/** Fields of XtcpConfig whose type is exactly `V`. */
export type FieldOf<V> = {
  [K in keyof ConfigFields]-?: [ConfigFields[K]] extends [V]
    ? ([V] extends [ConfigFields[K]] ? K : never)
    : never;
}[keyof ConfigFields];

/** What every flag has. */
interface Common {
  /**
   * Name on the command line, without dashes; absent for fields that only XTCP_CONFIG_JSON
   * sets (their default and rule still apply).
   */
  readonly flag?: string;
  /** Environment variable that overrides the flag. */
  readonly env?: string;
  /** Default, as flag text. */
  readonly def: string;
  /** One line for --help. */
  readonly help: string;
}

/** An unsigned 32-bit number. */
export interface UintFlag extends Common {
  readonly kind: "uint";
  readonly field: FieldOf<number>;
  /** Inclusive bounds. */
  readonly range?: readonly [number, number];
}

/** An unsigned 64-bit number. */
export interface Uint64Flag extends Common {
  readonly kind: "uint64";
  readonly field: FieldOf<bigint>;
  /** Inclusive bounds. */
  readonly range?: readonly [number, number];
}

/** Bounds of a duration, in ms. */
export interface DurationRange {
  /** Smallest value (inclusive, or exclusive with `above`). */
  readonly min: number;
  /** Whether `min` itself is refused. */
  readonly above?: boolean;
  /** Largest value (inclusive). */
  readonly max: number;
}

/** A Go-style duration (`10s`, `1m30s`). */
export interface DurationFlag extends Common {
  readonly kind: "duration";
  readonly field: FieldOf<Duration | undefined>;
  readonly range?: DurationRange;
}

/** Free text. */
export interface StringFlag extends Common {
  readonly kind: "string";
  readonly field: FieldOf<string>;
  /** Inclusive bounds of the length. */
  readonly length?: readonly [number, number];
  /** The only values allowed, and what to call them in the message ("must be one of" without). */
  readonly oneOf?: { readonly values: readonly string[]; readonly noun?: string };
  /** Further check: returns what is wrong, or undefined. */
  readonly check?: (value: string) => string | undefined;
  /** Never printed or logged; also read from the file this variable names. */
  readonly secret?: { readonly envFile: string };
}

/** true or false (`-flag`, `-flag=false`, `--no-flag`). */
export interface BoolFlag extends Common {
  readonly kind: "bool";
  readonly field: FieldOf<boolean>;
}

/** A comma list. */
export interface ListFlag extends Common {
  readonly kind: "list";
  readonly field: FieldOf<string[]>;
  /** Most items allowed. */
  readonly maxItems?: number;
}

/** `default`, `all`, `""` or a comma list of decoder names. */
export interface DecodersFlag extends Common {
  readonly kind: "deserializers";
  readonly field: "enabledDeserializers";
}

/** One configuration flag. */
export type FlagSpec =
  | UintFlag
  | Uint64Flag
  | DurationFlag
  | StringFlag
  | BoolFlag
  | ListFlag
  | DecodersFlag;

type Name = string | undefined;
type Env = string | undefined;

/** A builder's arguments: flag, field (checked by the compiler), default, variable, rule, help. */
type Args<F, R> = [flag: Name, field: F, def: string, env: Env, rule: R, help: string];

function make<const K extends FlagSpec["kind"], F, R>(
  kind: K,
  [flag, field, def, env, rule, help]: Args<F, R>,
) {
  return { kind, field, ...(flag ? { flag } : {}), def, ...(env ? { env } : {}), help, ...rule };
}

const num = (...a: Args<FieldOf<number>, NumberRule>): UintFlag => make("uint", a);
const big = (...a: Args<FieldOf<bigint>, NumberRule>): Uint64Flag => make("uint64", a);
const dur = (...a: Args<FieldOf<Duration | undefined>, DurationRule>): DurationFlag =>
  make("duration", a);
const str = (...a: Args<FieldOf<string>, StringRule>): StringFlag => make("string", a);
const bool = (...a: Args<FieldOf<boolean>, None>): BoolFlag => make("bool", a);
const list = (...a: Args<FieldOf<string[]>, ListRule>): ListFlag => make("list", a);
const decoders = (...a: Args<"enabledDeserializers", None>): DecodersFlag =>
  make("deserializers", a);

type None = Record<never, never>;
type NumberRule = Pick<UintFlag, "range">;
type DurationRule = Pick<DurationFlag, "range">;
type StringRule = Pick<StringFlag, "length" | "oneOf" | "check" | "secret">;
type ListRule = Pick<ListFlag, "maxItems">;

/** No rule. */
const none: None = {};
/** min to max, inclusive. */
const range = (min: number, max: number): NumberRule => ({ range: [min, max] });
/** A percentage. */
const PCT = range(0, 100);
/** A duration above `min` ms and at most `max` ms. */
const above = (min: number, max: number): DurationRule => ({ range: { min, above: true, max } });
/** A duration from `min` to `max` ms. */
const within = (min: number, max: number): DurationRule => ({ range: { min, max } });
/** A length from `min` to `max`. */
const length = (min: number, max: number): StringRule => ({ length: [min, max] });
/** One of `values` (called `noun` in the message). */
const oneOf = (values: readonly string[], noun?: string): StringRule => ({
  oneOf: { values, ...(noun ? { noun } : {}) },
});
/** A check returning what is wrong. */
const check = (fn: (value: string) => string | undefined): StringRule => ({ check: fn });
/** Never printed; also read from the file named by `envFile`. */
const secret = (envFile: string): StringRule => ({ secret: { envFile } });
/** At most `max` items. */
const items = (max: number): ListRule => ({ maxItems: max });

const WEEK = 7 * 24 * 3600 * 1000;

/** A check from a parser: its error's message, or undefined when it parses. */
function problemOf(parse: (value: string) => unknown): (value: string) => string | undefined {
  return (value) => {
    try {
      parse(value);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };
}

const DEST_RULE: StringRule = { ...length(4, 512), ...check(problemOf(parseDest)) };
const MARSHAL_RULE: StringRule = { ...length(3, 40), ...oneOf(MARSHALLER_NAMES, "marshallers") };

/** Every configuration flag, in the order `--help` lists them; a flag of undefined: no flag. */
// deno-fmt-ignore
export const FLAGS: readonly FlagSpec[] = [
  dur("frequency",                 "pollFrequency",                "10s",                     "POLL_FREQUENCY",                above(0, WEEK),               "time between polls"),
  dur("timeout",                   "pollTimeout",                  "5s",                      "POLL_TIMEOUT",                  above(0, WEEK),               "per-poll timeout; must be shorter than frequency"),
  num("pollJitterPct",             "pollJitterPct",                "20",                      "POLL_JITTER_PCT",               PCT,                          "0-100 % of frequency: start delay and tick jitter"),
  big("maxLoops",                  "maxLoops",                     "0",                       "MAX_LOOPS",                     range(0, 100000),             "stop after N polls; 0 = forever"),
  big("nltimeout",                 "nlTimeoutMilliseconds",        "1000",                    "NLTIMEOUTMS",                   range(0, 100000),             "netlink receive timeout (ms); 0 = none"),
  num("netlinkers",                "netlinkers",                   "4",                       "NETLINKERS",                    range(1, 100),                "accepted for compatibility (one reader per namespace here)"),
  num(undefined,                   "netlinkersDoneChanSize",       "100",                     undefined,                       range(1, 1000),               "accepted for compatibility"),
  num("nlmsgSeq",                  "nlmsgSeq",                     "666",                     "NLMSQSEQ",                      range(0, 10000),              "first netlink sequence number"),
  big("packetSize",                "packetSize",                   "0",                       "PACKET_SIZE",                   range(0, 1e6),                "receive buffer base in bytes; 0 = 4096"),
  num("packetSizeMply",            "packetSizeMply",               "8",                       "PACKETSIZEMPLY",                range(0, 100),                "receive buffer = packetSize x this (at least 32 KiB)"),
  num("writeFiles",                "writeFiles",                   "0",                       "WRITEFILES",                    range(0, 1000),               "capture the first N netlink datagrams as an nlmon pcap"),
  str("capturePath",               "capturePath",                  "./",                      "CAPTUREPATH",                   length(1, 80),                "prefix of capture files"),
  big("modulus",                   "modulus",                      "1",                       "MODULUS",                       range(1, 1e6),                "report only every Nth socket (debug); 1 = all"),
  str("marshal",                   "marshalTo",                    "protobufList",            "MARSHAL",                       MARSHAL_RULE,                 MARSHALLER_NAMES.join(", ")),
  str("columns",                   "csvColumns",                   "",                        undefined,                       none,                         "csv/tsv: comma list of field names (proto or lowerCamelCase); empty = all"),
  num("envelopeFlushBytes",        "envelopeFlushThresholdBytes",  "0",                       "ENVELOPE_FLUSH_BYTES",          none,                         "flush an envelope above this many bytes; 0 = 786432"),
  num("envelopeFlushRows",         "envelopeFlushThresholdRows",   "0",                       "ENVELOPE_FLUSH_ROWS",           none,                         "flush an envelope at this many rows; 0 = 10000"),
  str("dest",                      "dest",                         "stdout",                  "DEST",                          DEST_RULE,                    "destination: null, stdout, stderr, file:PATH, udp:, tcp:HOST:PORT, unix:PATH, unixgram:PATH, http(s)://URL, kafka:, nats:, nsq:, valkey:/redis:, valkey-stream:HOST:PORT, s3parquet:[URL]"),
  num("destWriteFiles",            "destWriteFiles",               "10",                      "DEST_WRITE_FILES",              range(0, 1000),               "accepted for compatibility"),
  str("topic",                     "topic",                        "xtcp",                    "TOPIC",                         length(1, 40),                "Kafka topic / NATS subject / NSQ topic / Valkey channel"),
  str("kafkaCompression",          "kafkaCompression",             "",                        "KAFKA_COMPRESSION",             oneOf(KAFKA_COMPRESSIONS),    "Kafka compression"),
  str("xtcpProtoFile",             "xtcpProtoFile",                "/xtcp_flat_record.proto", "XTCP_PROTO_FILE",               length(1, 80),                "proto registered with the schema registry"),
  str("kafkaSchemaUrl",            "kafkaSchemaUrl",               "http://localhost:18081",  "KAFKA_SCHEMA_URL",              length(1, 60),                "schema registry URL"),
  dur("produceTimeout",            "kafkaProduceTimeout",          "0s",                      "KAFKA_PRODUCE_TIMEOUT",         within(0, 600_000),           "how long one send may wait for a broker or receiver; 0 = 5s (http, https: 10s)"),
  str("httpCaFile",                "httpCaFile",                   "",                        "HTTP_CA_FILE",                  length(0, 255),               "https: PEM file of CA certificates trusted besides the default roots"),
  str("s3Endpoint",                "s3Endpoint",                   "",                        "S3_ENDPOINT",                   none,                         "s3parquet endpoint URL"),
  str("s3Bucket",                  "s3Bucket",                     "",                        "S3_BUCKET",                     none,                         "s3parquet bucket"),
  str("s3Prefix",                  "s3Prefix",                     "",                        "S3_PREFIX",                     none,                         "s3parquet key prefix"),
  str("s3AccessKey",               "s3AccessKey",                  "",                        "S3_ACCESS_KEY",                 secret("S3_ACCESS_KEY_FILE"), "S3 access key (never printed)"),
  str("s3SecretKey",               "s3SecretKey",                  "",                        "S3_SECRET_KEY",                 secret("S3_SECRET_KEY_FILE"), "S3 secret key (never printed)"),
  str("s3Region",                  "s3Region",                     "",                        "S3_REGION",                     none,                         "S3 region; empty = us-east-1"),
  bool("s3SkipBucketProbe",        "s3SkipBucketProbe",            "false",                   "S3_SKIP_BUCKET_PROBE",          none,                         "skip the startup bucket probe"),
  num("s3ParquetFlushBytes",       "s3ParquetFlushThresholdBytes", "0",                       "S3_PARQUET_FLUSH_BYTES",        none,                         "parquet object size (uncompressed column bytes); 0 = 63 MiB"),
  dur("s3FlushInterval",           "s3FlushInterval",              "0s",                      "S3_FLUSH_INTERVAL",             none,                         "parquet staleness flush; 0 = max(frequency, 30m)"),
  num("s3FlushJitterPct",          "s3FlushJitterPct",             "20",                      "S3_FLUSH_JITTER_PCT",           PCT,                          "jitter of the staleness timer"),
  num("s3FlushThresholdJitterPct", "s3FlushThresholdJitterPct",    "20",                      "S3_FLUSH_THRESHOLD_JITTER_PCT", PCT,                          "downward jitter of the size cap"),
  num("s3UploadMaxAttempts",       "s3UploadMaxAttempts",          "10",                      "S3_UPLOAD_MAX_ATTEMPTS",        range(1, 100),                "PUT attempts of an object before it goes back to the queue"),
  str("s3ParquetCodec",            "s3ParquetCodec",               "zstd",                    "S3_PARQUET_CODEC",              oneOf(PARQUET_CODECS),        "Parquet page compression: zstd, snappy, gzip, none"),
  dur("s3UploadBackoffCap",        "s3UploadBackoffCap",           "0s",                      "S3_UPLOAD_BACKOFF_CAP",         none,                         "upload backoff cap; 0 = clamp(frequency/10, 1s, 1h)"),
  dur("reconcileFrequency",        "reconcileFrequency",           "6h",                      "RECONCILE_FREQUENCY",           none,                         "background namespace reconcile; 0 = off"),
  bool("reconcileBeforePoll",      "reconcileBeforePoll",          "true",                    "RECONCILE_BEFORE_POLL",         none,                         "reconcile namespaces right before each poll"),
  str("label",                     "label",                        "",                        "LABEL",                         length(0, 40),                "free text stamped on every record (max 40)"),
  str("tag",                       "tag",                          "",                        "TAG",                           length(0, 40),                "free text stamped on every record (max 40)"),
  str("location",                  "location",                     "",                        "LOCATION",                      length(0, 253),               "site / DC stamped on every record"),
  str("hostname",                  "hostname",                     "",                        "XTCP_HOSTNAME",                 length(0, 253),               "hostname on records; empty = the OS hostname"),
  str(undefined,                   "daemonVersion",                "",                        undefined,                       length(0, 253),               "version stamped on records; empty = this build's"),
  bool("resolveContainerId",       "resolveContainerId",           "false",                   "CONTAINER_ID_RESOLVE",          none,                         "container id and runtime from /proc/<pid>/cgroup where the API did not say"),
  bool("enrichContainer",          "enrichContainerEnable",        "false",                   "ENRICH_CONTAINER",              none,                         "container id, name, image, runtime from the Docker Engine API (dockerd or podman) at -dockerSocket"),
  str("dockerSocket",              "dockerSocketPath",             "/run/docker.sock",        "DOCKER_SOCKET",                 length(0, 255),               "Docker API socket"),
  bool("enrichLldp",               "enrichLldpEnable",             "false",                   "ENRICH_LLDP",                   none,                         "uplinks' LLDP neighbours from lldpd, through lldpcli -f json0"),
  str("lldpdSocket",               "lldpdSocketPath",              "/run/lldpd.socket",       "LLDPD_SOCKET",                  length(0, 255),               "lldpd control socket (lldpcli -u)"),
  str("lldpdVersionHint",          "lldpdVersionHint",             "",                        "LLDPD_VERSION_HINT",            length(0, 16),                "accepted, unused (lldpcli reads every lldpd version)"),
  bool("enrichNic",                "enrichNicEnable",              "false",                   "ENRICH_NIC",                    none,                         "uplinks' NIC facts from sysfs and ETHTOOL_GDRVINFO"),
  num("uplinkCount",               "uplinkCount",                  "2",                       "UPLINK_COUNT",                  range(0, 2),                  "uplink slots (max 2)"),
  list("uplinkInterfaces",         "uplinkInterfaces",             "",                        "UPLINK_INTERFACES",             items(2),                     "comma list of uplink interfaces (max 2)"),
  dur("enrichRefresh",             "enrichRefresh",                "0s",                      "ENRICH_REFRESH",                within(0, WEEK),              "how often NIC facts and LLDP neighbours are read again and the Docker API relisted; 0 = 30s"),
  bool("populateNsid",             "populateNsid",                 "false",                   "POPULATE_NSID",                 none,                         "fill nsid from RTM_GETNSID (the id the daemon's namespace gives each namespace)"),
  num("ipv4Ttl",                   "ipv4Ttl",                      "0",                       "IPV4_TTL",                      range(0, 255),                "TTL of our listening sockets; 0 = default"),
  num("ipv6HopLimit",              "ipv6HopLimit",                 "0",                       "IPV6_HOP_LIMIT",                range(0, 255),                "hop limit of our listening sockets; 0 = default"),
  num("grpcPort",                  "grpcPort",                     "8889",                    "GRPC_PORT",                     range(1, 65535),              "gRPC port"),
  decoders("deserializers",        "enabledDeserializers",         "default",                 "DESERIALIZERS",                 none,                         "default, all, \"\" or a comma list of decoders"),
  bool("ioUring",                  "ioUring",                      "false",                   undefined,                       none,                         "io_uring netlink reads"),
  bool("pipeline",                 "pipeline",                     "false",                   "PIPELINE",                      none,                         "decode and encode in a worker thread while this one receives (lower wall time, more CPU)"),
  bool("changesOnly",              "changesOnly",                  "false",                   "CHANGES_ONLY",                  none,                         "write a socket only when its state or counters changed since the previous poll, and once flagged closed when it is gone"),
  num("snapshotEvery",             "snapshotEvery",                "0",                       "SNAPSHOT_EVERY",                range(0, 1e6),                "with --changesOnly: every socket every N polls; 0 = the first poll only"),
  bool("socketOwners",             "socketOwners",                 "false",                   "SOCKET_OWNERS",                 none,                         "fill socket_owner_pid and socket_owner_comm from /proc/*/fd (as ss -p)"),
  dur("socketOwnersBudget",        "socketOwnersBudget",           "100ms",                   "SOCKET_OWNERS_BUDGET",          within(0, 60_000),            "with --socketOwners: how long the /proc walk may run per poll (it resumes in the next); 0 = 100ms"),
  big("fileMaxBytes",              "fileMaxBytes",                 "0",                       "FILE_MAX_BYTES",                range(0, 2 ** 50),            "file: destination: rotate above this size; 0 = 64 MiB"),
  dur("fileMaxAge",                "fileMaxAge",                   "0s",                      "FILE_MAX_AGE",                  within(0, WEEK),              "file: destination: rotate after this age; 0 = 1h"),
  num("ioUringRecvBatch",          "ioUringRecvBatchSize",         "64",                      undefined,                       range(1, 4096),               "recvmsg SQEs in flight"),
  num("ioUringCqeBatch",           "ioUringCqeBatchSize",          "128",                     undefined,                       range(1, 4096),               "CQEs reaped per peek"),
  str("pyroscopeUrl",              "pyroscopeUrl",                 "",                        undefined,                       none,                         "accepted for compatibility"),
  str("pyroscopeAppName",          "pyroscopeAppName",             "xtcp2",                   undefined,                       none,                         "accepted for compatibility"),
  num("pyroscopeSampleHz",         "pyroscopeSampleHz",            "100",                     undefined,                       none,                         "accepted for compatibility"),
  num("pyroscopeUploadSec",        "pyroscopeUploadIntervalSec",   "15",                      undefined,                       none,                         "accepted for compatibility"),
  big("destQueueBytes",            "destQueueBytes",               "0",                       "DEST_QUEUE_BYTES",              range(0, 2 ** 40),            "delivery queue in memory, bytes; 0 = 32 MiB (about 3 min at 5,000 sockets every 10 s)"),
  str("destQueueFull",             "destQueueFull",                "drop_oldest",             "DEST_QUEUE_FULL",               oneOf(["", ...FULL_POLICIES]),"full queue: drop_oldest, drop_newest, or block (the next poll waits)"),
  dur("destRetryInitial",          "destRetryInitial",             "0s",                      "DEST_RETRY_INITIAL",            within(0, 600_000),           "first delay after a failed send; 0 = 1s (doubles, with jitter)"),
  dur("destRetryMax",              "destRetryMax",                 "0s",                      "DEST_RETRY_MAX",                within(0, 3_600_000),         "largest delay between attempts; 0 = 30s"),
  str("spoolDir",                  "spoolDir",                     "",                        "SPOOL_DIR",                     length(0, 255),               "disk spool for what does not fit the queue and what is left at shutdown; empty = none"),
  big("spoolMaxBytes",             "spoolMaxBytes",                "0",                       "SPOOL_MAX_BYTES",               range(0, 2 ** 50),            "spool size, bytes; 0 = 1 GiB"),
  dur("shutdownDrain",             "shutdownDrain",                "0s",                      "SHUTDOWN_DRAIN",                within(0, 60_000),            "how long shutdown waits for the queue before spooling or dropping the rest; 0 = 3s"),
  big("valkeyStreamMaxLen",        "valkeyStreamMaxLen",           "0",                       "VALKEY_STREAM_MAX_LEN",         range(0, 1e9),                "valkey-stream: keep about this many entries (one per flush); 0 = 100"),
  bool("twoWalks",                 "twoWalks",                     "false",                   "TWO_WALKS",                     none,                         "dump IPv4 and IPv6 with two v2 requests (two walks of the kernel's tables) instead of one compat request"),
  str("states",                    "states",                       "all",                     "STATES",                        check(problemOf(parseStates)),         "TCP states the kernel dumps: ss's names (established, listening, time-wait, connected, …) or a mask"),
  str("filter",                    "filter",                       "",                        "FILTER",                        check(problemOf(filterBytecode)),      "sockets the kernel dumps, in ss's filter grammar (\"dport = :443 or src 10.0.0.0/8\"; and/or left to right); empty = all"),
  num("d",                         "debugLevel",                   "1",                       "DEBUG_LEVEL",                   range(0, 1000),               "verbosity: 0 errors only, 1 one summary line per poll, >10 more"),
];

/** A flag that acts on the process, not on XtcpConfig (listeners, token, stream queues). */
export interface ProcessFlagSpec {
  /** Default, as flag text. */
  readonly def: string;
  /** Environment variable that overrides the flag. */
  readonly env: string;
  /** One line for --help. */
  readonly help: string;
  /** Inclusive bounds when the value is an integer. */
  readonly range?: readonly [number, number];
}

/** Flags that act on the process, not the config. */
export const PROCESS_FLAGS = {
  promListen: {
    def: "127.0.0.1:9088",
    env: "PROM_LISTEN",
    help: "HTTP listener for /metrics, /healthz, /readyz",
  },
  promPath: { def: "/metrics", env: "PROM_PATH", help: "metrics path" },
  grpcAddress: {
    def: "127.0.0.1",
    env: "GRPC_ADDRESS",
    help: "address the gRPC API listens on (with --grpcPort)",
  },
  apiToken: {
    def: "",
    env: "XTCP_API_TOKEN",
    help: "bearer token required by the gRPC API and /metrics; empty = none",
  },
  streamQueue: {
    def: "10000",
    env: "STREAM_QUEUE",
    help: "records queued per live-stream client before its records are dropped (1 to 1000000)",
    range: [1, 1_000_000],
  },
} as const satisfies Record<string, ProcessFlagSpec>;

/** Name of a process flag. */
export type ProcessFlag = keyof typeof PROCESS_FLAGS;

/**
 * The original's flags for the Go runtime: accepted (existing unit files pass them), with no
 * effect in this runtime, and named once in a startup notice.
 */
export const GO_RUNTIME_FLAGS = {
  goMaxProcs: "GOMAXPROCS: Deno's threads are not set this way",
  maxThreads: "Go's OS-thread cap",
  "profile.mode": "Go's one-shot profiles (use deno's --v8-flags=--prof or --cpu-prof)",
} as const;

/** Name of a Go-runtime flag. */
export type GoRuntimeFlag = keyof typeof GO_RUNTIME_FLAGS;

/** The name a flag is known by in messages: `--flag`, or the field when it has no flag. */
export function flagName(spec: FlagSpec): string {
  return spec.flag ? `--${spec.flag}` : spec.field;
}

/** The flag of a field, for messages about it. */
export function flagOfField(field: keyof ConfigFields): string {
  const spec = FLAGS.find((s) => s.field === field);
  return spec ? flagName(spec) : field;
}

/**
 * Sets `spec`'s field of `cfg` from flag text; throws a ConfigError naming `source`, the text
 * and the rule when the text is not of the flag's kind.
 *
 * @example
 * ```ts
 * const frequency = FLAGS.find((s) => s.flag === "frequency")!;
 * setFromText(cfg, frequency, "30s", "--frequency");
 * ```
 */
export function setFromText(cfg: XtcpConfig, spec: FlagSpec, text: string, source: string): void {
  const bad = (rule: string, cause?: unknown) =>
    new ConfigError(
      `Invalid value for ${source}: "${text}": ${rule}`,
      cause === undefined ? undefined : { cause },
    );
  switch (spec.kind) {
    case "duration": {
      let ms: number;
      try {
        ms = parseDuration(text);
      } catch (err) {
        throw bad("must be a duration such as 10s, 500ms, 1m30s", err);
      }
      cfg[spec.field] = msToDuration(ms);
      return;
    }
    case "uint":
    case "uint64": {
      const t = text.trim();
      if (!/^\d+$/.test(t)) throw bad("must be a non-negative integer");
      const n = BigInt(t);
      if (spec.kind === "uint") {
        if (n > 0xffffffffn) throw bad("must be below 2^32");
        cfg[spec.field] = Number(n);
      } else {
        if (n > 0xffffffffffffffffn) throw bad("must be below 2^64");
        cfg[spec.field] = n;
      }
      return;
    }
    case "bool": {
      const v = parseBool(text);
      if (v === undefined) throw bad("must be true or false");
      cfg[spec.field] = v;
      return;
    }
    case "string":
      cfg[spec.field] = text;
      return;
    case "list":
      cfg[spec.field] = text.split(",").map((s) => s.trim()).filter((s) => s);
      return;
    case "deserializers": {
      let names: string[];
      try {
        names = decoderNames(text);
      } catch (err) {
        if (!(err instanceof DeserializerSpecError)) throw err;
        throw bad(
          `unknown decoder "${err.bad}"; valid: default, all, or a comma list of decoders`,
          err,
        );
      }
      cfg[spec.field] = create(EnabledDeserializersSchema, {
        enabled: Object.fromEntries(names.map((n) => [n, true])),
      });
      return;
    }
  }
}

/** Go's boolean flag values (`1`, `t`, `true`, `0`, `f`, `false`, any case; also yes/no). */
export function parseBool(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (["1", "t", "true", "yes"].includes(t)) return true;
  if (["0", "f", "false", "no"].includes(t)) return false;
  return undefined;
}
