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
import { KAFKA_COMPRESSIONS } from "../dest/destination.ts";
import { parseDest } from "../dest/registry.ts";
import { decoderNames, DeserializerSpecError } from "../netlink/deserializers.ts";
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

type Opts<T extends FlagSpec> = Omit<T, "kind" | "field" | "def" | "help" | "flag">;

function uint(
  flag: string | undefined,
  field: FieldOf<number>,
  def: string,
  help: string,
  o: Opts<UintFlag> = {},
): UintFlag {
  return { kind: "uint", ...(flag ? { flag } : {}), field, def, help, ...o };
}
function uint64(
  flag: string,
  field: FieldOf<bigint>,
  def: string,
  help: string,
  o: Opts<Uint64Flag> = {},
): Uint64Flag {
  return { kind: "uint64", flag, field, def, help, ...o };
}
function duration(
  flag: string,
  field: FieldOf<Duration | undefined>,
  def: string,
  help: string,
  o: Opts<DurationFlag> = {},
): DurationFlag {
  return { kind: "duration", flag, field, def, help, ...o };
}
function text(
  flag: string | undefined,
  field: FieldOf<string>,
  def: string,
  help: string,
  o: Opts<StringFlag> = {},
): StringFlag {
  return { kind: "string", ...(flag ? { flag } : {}), field, def, help, ...o };
}
function bool(
  flag: string,
  field: FieldOf<boolean>,
  def: string,
  help: string,
  o: Opts<BoolFlag> = {},
): BoolFlag {
  return { kind: "bool", flag, field, def, help, ...o };
}

const WEEK = 7 * 24 * 3600 * 1000;
const PCT = [0, 100] as const;
const POSITIVE_UP_TO_A_WEEK: DurationRange = { min: 0, above: true, max: WEEK };

function destProblem(dest: string): string | undefined {
  try {
    parseDest(dest);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Every configuration flag, in the order `--help` lists them. */
export const FLAGS: readonly FlagSpec[] = [
  duration("frequency", "pollFrequency", "10s", "time between polls", {
    env: "POLL_FREQUENCY",
    range: POSITIVE_UP_TO_A_WEEK,
  }),
  duration("timeout", "pollTimeout", "5s", "per-poll timeout; must be shorter than frequency", {
    env: "POLL_TIMEOUT",
    range: POSITIVE_UP_TO_A_WEEK,
  }),
  uint(
    "pollJitterPct",
    "pollJitterPct",
    "20",
    "0-100 % of frequency: start delay and tick jitter",
    {
      env: "POLL_JITTER_PCT",
      range: PCT,
    },
  ),
  uint64("maxLoops", "maxLoops", "0", "stop after N polls; 0 = forever", {
    env: "MAX_LOOPS",
    range: [0, 100000],
  }),
  uint64("nltimeout", "nlTimeoutMilliseconds", "1000", "netlink receive timeout (ms); 0 = none", {
    env: "NLTIMEOUTMS",
    range: [0, 100000],
  }),
  uint(
    "netlinkers",
    "netlinkers",
    "4",
    "accepted for compatibility (one reader per namespace here)",
    { env: "NETLINKERS", range: [1, 100] },
  ),
  uint(undefined, "netlinkersDoneChanSize", "100", "accepted for compatibility", {
    range: [1, 1000],
  }),
  uint("nlmsgSeq", "nlmsgSeq", "666", "first netlink sequence number", {
    env: "NLMSQSEQ",
    range: [0, 10000],
  }),
  uint64("packetSize", "packetSize", "0", "receive buffer base in bytes; 0 = 4096", {
    env: "PACKET_SIZE",
    range: [0, 1e6],
  }),
  uint(
    "packetSizeMply",
    "packetSizeMply",
    "8",
    "receive buffer = packetSize x this (at least 32 KiB)",
    { env: "PACKETSIZEMPLY", range: [0, 100] },
  ),
  uint(
    "writeFiles",
    "writeFiles",
    "0",
    "capture the first N netlink datagrams as an nlmon pcap",
    { env: "WRITEFILES", range: [0, 1000] },
  ),
  text("capturePath", "capturePath", "./", "prefix of capture files", {
    env: "CAPTUREPATH",
    length: [1, 80],
  }),
  uint64("modulus", "modulus", "1", "report only every Nth socket (debug); 1 = all", {
    env: "MODULUS",
    range: [1, 1e6],
  }),
  text("marshal", "marshalTo", "protobufList", MARSHALLER_NAMES.join(", "), {
    env: "MARSHAL",
    length: [3, 40],
    oneOf: { values: MARSHALLER_NAMES, noun: "marshallers" },
  }),
  text(
    "columns",
    "csvColumns",
    "",
    "csv/tsv: comma list of lowerCamelCase field names; empty = all",
  ),
  uint(
    "envelopeFlushBytes",
    "envelopeFlushThresholdBytes",
    "0",
    "flush an envelope above this many bytes; 0 = 786432",
    { env: "ENVELOPE_FLUSH_BYTES" },
  ),
  uint(
    "envelopeFlushRows",
    "envelopeFlushThresholdRows",
    "0",
    "flush an envelope at this many rows; 0 = 10000",
    { env: "ENVELOPE_FLUSH_ROWS" },
  ),
  text(
    "dest",
    "dest",
    "stdout",
    "destination: null, stdout, stderr, file:PATH, udp:HOST:PORT, unix:PATH, unixgram:PATH, kafka:, nats:, nsq:, valkey:/redis:HOST:PORT",
    { env: "DEST", length: [4, 512], check: destProblem },
  ),
  uint("destWriteFiles", "destWriteFiles", "10", "accepted for compatibility", {
    env: "DEST_WRITE_FILES",
    range: [0, 1000],
  }),
  text("topic", "topic", "xtcp", "Kafka topic / NATS subject / NSQ topic / Valkey channel", {
    env: "TOPIC",
    length: [1, 40],
  }),
  text("kafkaCompression", "kafkaCompression", "", "Kafka compression", {
    env: "KAFKA_COMPRESSION",
    oneOf: { values: KAFKA_COMPRESSIONS },
  }),
  text(
    "xtcpProtoFile",
    "xtcpProtoFile",
    "/xtcp_flat_record.proto",
    "proto registered with the schema registry",
    { env: "XTCP_PROTO_FILE", length: [1, 80] },
  ),
  text("kafkaSchemaUrl", "kafkaSchemaUrl", "http://localhost:18081", "schema registry URL", {
    env: "KAFKA_SCHEMA_URL",
    length: [1, 60],
  }),
  duration(
    "produceTimeout",
    "kafkaProduceTimeout",
    "0s",
    "how long one send may wait for a broker or receiver; 0 = 5s",
    { env: "KAFKA_PRODUCE_TIMEOUT", range: { min: 0, max: 600_000 } },
  ),
  text("s3Endpoint", "s3Endpoint", "", "s3parquet endpoint URL", { env: "S3_ENDPOINT" }),
  text("s3Bucket", "s3Bucket", "", "s3parquet bucket", { env: "S3_BUCKET" }),
  text("s3Prefix", "s3Prefix", "", "s3parquet key prefix", { env: "S3_PREFIX" }),
  text("s3AccessKey", "s3AccessKey", "", "S3 access key (never printed)", {
    env: "S3_ACCESS_KEY",
    secret: { envFile: "S3_ACCESS_KEY_FILE" },
  }),
  text("s3SecretKey", "s3SecretKey", "", "S3 secret key (never printed)", {
    env: "S3_SECRET_KEY",
    secret: { envFile: "S3_SECRET_KEY_FILE" },
  }),
  text("s3Region", "s3Region", "", "S3 region; empty = us-east-1", { env: "S3_REGION" }),
  bool("s3SkipBucketProbe", "s3SkipBucketProbe", "false", "skip the startup bucket probe", {
    env: "S3_SKIP_BUCKET_PROBE",
  }),
  uint(
    "s3ParquetFlushBytes",
    "s3ParquetFlushThresholdBytes",
    "0",
    "parquet object size cap; 0 = 63 MiB",
    { env: "S3_PARQUET_FLUSH_BYTES" },
  ),
  duration(
    "s3FlushInterval",
    "s3FlushInterval",
    "0s",
    "parquet staleness flush; 0 = max(frequency, 30m)",
    { env: "S3_FLUSH_INTERVAL" },
  ),
  uint("s3FlushJitterPct", "s3FlushJitterPct", "20", "jitter of the staleness timer", {
    env: "S3_FLUSH_JITTER_PCT",
    range: PCT,
  }),
  uint(
    "s3FlushThresholdJitterPct",
    "s3FlushThresholdJitterPct",
    "20",
    "downward jitter of the size cap",
    { env: "S3_FLUSH_THRESHOLD_JITTER_PCT", range: PCT },
  ),
  uint(
    "s3UploadMaxAttempts",
    "s3UploadMaxAttempts",
    "10",
    "PUT attempts before an object is dropped",
    { env: "S3_UPLOAD_MAX_ATTEMPTS", range: [1, 100] },
  ),
  duration(
    "s3UploadBackoffCap",
    "s3UploadBackoffCap",
    "0s",
    "upload backoff cap; 0 = clamp(frequency/10, 1s, 1h)",
    { env: "S3_UPLOAD_BACKOFF_CAP" },
  ),
  duration(
    "reconcileFrequency",
    "reconcileFrequency",
    "6h",
    "background namespace reconcile; 0 = off",
    { env: "RECONCILE_FREQUENCY" },
  ),
  bool(
    "reconcileBeforePoll",
    "reconcileBeforePoll",
    "true",
    "reconcile namespaces right before each poll",
    { env: "RECONCILE_BEFORE_POLL" },
  ),
  text("label", "label", "", "free text stamped on every record (max 40)", {
    env: "LABEL",
    length: [0, 40],
  }),
  text("tag", "tag", "", "free text stamped on every record (max 40)", {
    env: "TAG",
    length: [0, 40],
  }),
  text("location", "location", "", "site / DC stamped on every record", {
    env: "LOCATION",
    length: [0, 253],
  }),
  text("hostname", "hostname", "", "hostname on records; empty = the OS hostname", {
    env: "XTCP_HOSTNAME",
    length: [0, 253],
  }),
  text(undefined, "daemonVersion", "", "version stamped on records; empty = this build's", {
    length: [0, 253],
  }),
  bool("resolveContainerId", "resolveContainerId", "false", "cgroup id to container id", {
    env: "CONTAINER_ID_RESOLVE",
  }),
  bool(
    "enrichContainer",
    "enrichContainerEnable",
    "false",
    "Docker labels (not in this build)",
    { env: "ENRICH_CONTAINER" },
  ),
  text("dockerSocket", "dockerSocketPath", "/run/docker.sock", "Docker API socket", {
    env: "DOCKER_SOCKET",
    length: [0, 255],
  }),
  bool("enrichLldp", "enrichLldpEnable", "false", "lldpd neighbours (not in this build)", {
    env: "ENRICH_LLDP",
  }),
  text("lldpdSocket", "lldpdSocketPath", "/run/lldpd.socket", "lldpd socket", {
    env: "LLDPD_SOCKET",
    length: [0, 255],
  }),
  text("lldpdVersionHint", "lldpdVersionHint", "", "lldpd layout hint", {
    env: "LLDPD_VERSION_HINT",
    length: [0, 16],
  }),
  bool("enrichNic", "enrichNicEnable", "false", "NIC identity (not in this build)", {
    env: "ENRICH_NIC",
  }),
  uint("uplinkCount", "uplinkCount", "2", "uplink slots (max 2)", {
    env: "UPLINK_COUNT",
    range: [0, 2],
  }),
  {
    kind: "list",
    flag: "uplinkInterfaces",
    field: "uplinkInterfaces",
    def: "",
    help: "comma list of uplink interfaces (max 2)",
    env: "UPLINK_INTERFACES",
    maxItems: 2,
  },
  bool("populateNsid", "populateNsid", "false", "fill nsid (not in this build)", {
    env: "POPULATE_NSID",
  }),
  uint("ipv4Ttl", "ipv4Ttl", "0", "TTL of our listening sockets; 0 = default", {
    env: "IPV4_TTL",
    range: [0, 255],
  }),
  uint("ipv6HopLimit", "ipv6HopLimit", "0", "hop limit of our listening sockets; 0 = default", {
    env: "IPV6_HOP_LIMIT",
    range: [0, 255],
  }),
  uint("grpcPort", "grpcPort", "8889", "gRPC port", { env: "GRPC_PORT", range: [1, 65535] }),
  {
    kind: "deserializers",
    flag: "deserializers",
    field: "enabledDeserializers",
    def: "default",
    help: 'default, all, "" or a comma list of decoders',
    env: "DESERIALIZERS",
  },
  bool("ioUring", "ioUring", "false", "io_uring netlink reads"),
  bool(
    "pipeline",
    "pipeline",
    "false",
    "decode and encode in a worker thread while this one receives (lower wall time, more CPU)",
    { env: "PIPELINE" },
  ),
  uint64(
    "fileMaxBytes",
    "fileMaxBytes",
    "0",
    "file: destination: rotate above this size; 0 = 64 MiB",
    { env: "FILE_MAX_BYTES", range: [0, 2 ** 50] },
  ),
  duration(
    "fileMaxAge",
    "fileMaxAge",
    "0s",
    "file: destination: rotate after this age; 0 = 1h",
    { env: "FILE_MAX_AGE", range: { min: 0, max: WEEK } },
  ),
  uint("ioUringRecvBatch", "ioUringRecvBatchSize", "64", "recvmsg SQEs in flight", {
    range: [1, 4096],
  }),
  uint("ioUringCqeBatch", "ioUringCqeBatchSize", "128", "CQEs reaped per peek", {
    range: [1, 4096],
  }),
  text("pyroscopeUrl", "pyroscopeUrl", "", "accepted for compatibility"),
  text("pyroscopeAppName", "pyroscopeAppName", "xtcp2", "accepted for compatibility"),
  uint("pyroscopeSampleHz", "pyroscopeSampleHz", "100", "accepted for compatibility"),
  uint(
    "pyroscopeUploadSec",
    "pyroscopeUploadIntervalSec",
    "15",
    "accepted for compatibility",
  ),
  uint(
    "d",
    "debugLevel",
    "1",
    "verbosity: 0 errors only, 1 one summary line per poll, >10 more",
    { env: "DEBUG_LEVEL", range: [0, 1000] },
  ),
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
