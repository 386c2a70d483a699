/**
 * The daemon's configuration: the original's flags and environment variables mapped onto the
 * `XtcpConfig` proto, with the precedence built-in defaults < flags < environment <
 * `XTCP_CONFIG_JSON`, and validation that names the flag, the value and the rule.
 *
 * @module
 */
import { clone, create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";
import {
  EnabledDeserializersSchema,
  type XtcpConfig,
  XtcpConfigSchema,
} from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import { DECODER_NAMES, DECODERS } from "../netlink/deserializers.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { FIELDS } from "../record/fields.ts";

/** Kinds of flag value. */
type Kind = "uint" | "uint64" | "duration" | "string" | "bool" | "deserializers" | "list";

/** One flag of the daemon. */
export interface FlagSpec {
  /** Flag name as on the command line (without dashes). */
  flag: string;
  /** XtcpConfig field (lowerCamelCase), or "" for process-only flags. */
  field: string;
  /** Environment variable that overrides the flag. */
  env?: string;
  kind: Kind;
  /** Default, as flag text. */
  def: string;
  /** Never printed or logged. */
  secret?: boolean;
  help: string;
}

const f = (
  flag: string,
  field: string,
  kind: Kind,
  def: string,
  help: string,
  env?: string,
  secret = false,
): FlagSpec => ({
  flag,
  field,
  kind,
  def,
  help,
  ...(env ? { env } : {}),
  ...(secret ? { secret } : {}),
});

/** Every configuration flag, in the order `--help` lists them. */
export const FLAGS: readonly FlagSpec[] = [
  f("frequency", "pollFrequency", "duration", "10s", "time between polls", "POLL_FREQUENCY"),
  f(
    "timeout",
    "pollTimeout",
    "duration",
    "5s",
    "per-poll timeout; must be shorter than frequency",
    "POLL_TIMEOUT",
  ),
  f(
    "pollJitterPct",
    "pollJitterPct",
    "uint",
    "20",
    "0-100 % of frequency: start delay and tick jitter",
    "POLL_JITTER_PCT",
  ),
  f("maxLoops", "maxLoops", "uint64", "0", "stop after N polls; 0 = forever", "MAX_LOOPS"),
  f(
    "nltimeout",
    "nlTimeoutMilliseconds",
    "uint64",
    "1000",
    "netlink receive timeout (ms); 0 = none",
    "NLTIMEOUTMS",
  ),
  f(
    "netlinkers",
    "netlinkers",
    "uint",
    "4",
    "accepted for compatibility (one reader per namespace here)",
    "NETLINKERS",
  ),
  f("nlmsgSeq", "nlmsgSeq", "uint", "666", "first netlink sequence number", "NLMSQSEQ"),
  f(
    "packetSize",
    "packetSize",
    "uint64",
    "0",
    "receive buffer base in bytes; 0 = 4096",
    "PACKET_SIZE",
  ),
  f(
    "packetSizeMply",
    "packetSizeMply",
    "uint",
    "8",
    "receive buffer = packetSize x this (at least 32 KiB)",
    "PACKETSIZEMPLY",
  ),
  f(
    "writeFiles",
    "writeFiles",
    "uint",
    "0",
    "capture the first N netlink datagrams as an nlmon pcap",
    "WRITEFILES",
  ),
  f("capturePath", "capturePath", "string", "./", "prefix of capture files", "CAPTUREPATH"),
  f(
    "modulus",
    "modulus",
    "uint64",
    "1",
    "report only every Nth socket (debug); 1 = all",
    "MODULUS",
  ),
  f(
    "marshal",
    "marshalTo",
    "string",
    "protobufList",
    "protobufList, protoJson, protoText, msgpack, jsonl, csv, tsv",
    "MARSHAL",
  ),
  f(
    "columns",
    "csvColumns",
    "string",
    "",
    "csv/tsv: comma list of lowerCamelCase field names; empty = all",
  ),
  f(
    "envelopeFlushBytes",
    "envelopeFlushThresholdBytes",
    "uint",
    "0",
    "flush an envelope above this many bytes; 0 = 786432",
    "ENVELOPE_FLUSH_BYTES",
  ),
  f(
    "envelopeFlushRows",
    "envelopeFlushThresholdRows",
    "uint",
    "0",
    "flush an envelope at this many rows; 0 = 10000",
    "ENVELOPE_FLUSH_ROWS",
  ),
  f(
    "dest",
    "dest",
    "string",
    "stdout",
    "destination: null, stdout, stderr, file:PATH, udp:HOST:PORT, unix:PATH, unixgram:PATH",
    "DEST",
  ),
  f(
    "destWriteFiles",
    "destWriteFiles",
    "uint",
    "10",
    "accepted for compatibility",
    "DEST_WRITE_FILES",
  ),
  f("topic", "topic", "string", "xtcp", "Kafka topic / NATS subject / Valkey channel", "TOPIC"),
  f("kafkaCompression", "kafkaCompression", "string", "", "Kafka compression", "KAFKA_COMPRESSION"),
  f(
    "xtcpProtoFile",
    "xtcpProtoFile",
    "string",
    "/xtcp_flat_record.proto",
    "proto registered with the schema registry",
    "XTCP_PROTO_FILE",
  ),
  f(
    "kafkaSchemaUrl",
    "kafkaSchemaUrl",
    "string",
    "http://localhost:18081",
    "schema registry URL",
    "KAFKA_SCHEMA_URL",
  ),
  f(
    "produceTimeout",
    "kafkaProduceTimeout",
    "duration",
    "0s",
    "per-produce timeout; 0 = none",
    "KAFKA_PRODUCE_TIMEOUT",
  ),
  f("s3Endpoint", "s3Endpoint", "string", "", "s3parquet endpoint URL", "S3_ENDPOINT"),
  f("s3Bucket", "s3Bucket", "string", "", "s3parquet bucket", "S3_BUCKET"),
  f("s3Prefix", "s3Prefix", "string", "", "s3parquet key prefix", "S3_PREFIX"),
  f(
    "s3AccessKey",
    "s3AccessKey",
    "string",
    "",
    "S3 access key (never printed)",
    "S3_ACCESS_KEY",
    true,
  ),
  f(
    "s3SecretKey",
    "s3SecretKey",
    "string",
    "",
    "S3 secret key (never printed)",
    "S3_SECRET_KEY",
    true,
  ),
  f("s3Region", "s3Region", "string", "", "S3 region; empty = us-east-1", "S3_REGION"),
  f(
    "s3SkipBucketProbe",
    "s3SkipBucketProbe",
    "bool",
    "false",
    "skip the startup bucket probe",
    "S3_SKIP_BUCKET_PROBE",
  ),
  f(
    "s3ParquetFlushBytes",
    "s3ParquetFlushThresholdBytes",
    "uint",
    "0",
    "parquet object size cap; 0 = 63 MiB",
    "S3_PARQUET_FLUSH_BYTES",
  ),
  f(
    "s3FlushInterval",
    "s3FlushInterval",
    "duration",
    "0s",
    "parquet staleness flush; 0 = max(frequency, 30m)",
    "S3_FLUSH_INTERVAL",
  ),
  f(
    "s3FlushJitterPct",
    "s3FlushJitterPct",
    "uint",
    "20",
    "jitter of the staleness timer",
    "S3_FLUSH_JITTER_PCT",
  ),
  f(
    "s3FlushThresholdJitterPct",
    "s3FlushThresholdJitterPct",
    "uint",
    "20",
    "downward jitter of the size cap",
    "S3_FLUSH_THRESHOLD_JITTER_PCT",
  ),
  f(
    "s3UploadMaxAttempts",
    "s3UploadMaxAttempts",
    "uint",
    "10",
    "PUT attempts before an object is dropped",
    "S3_UPLOAD_MAX_ATTEMPTS",
  ),
  f(
    "s3UploadBackoffCap",
    "s3UploadBackoffCap",
    "duration",
    "0s",
    "upload backoff cap; 0 = clamp(frequency/10, 1s, 1h)",
    "S3_UPLOAD_BACKOFF_CAP",
  ),
  f(
    "reconcileFrequency",
    "reconcileFrequency",
    "duration",
    "6h",
    "background namespace reconcile; 0 = off",
    "RECONCILE_FREQUENCY",
  ),
  f(
    "reconcileBeforePoll",
    "reconcileBeforePoll",
    "bool",
    "true",
    "reconcile namespaces right before each poll",
    "RECONCILE_BEFORE_POLL",
  ),
  f("label", "label", "string", "", "free text stamped on every record (max 40)", "LABEL"),
  f("tag", "tag", "string", "", "free text stamped on every record (max 40)", "TAG"),
  f("location", "location", "string", "", "site / DC stamped on every record", "LOCATION"),
  f(
    "hostname",
    "hostname",
    "string",
    "",
    "hostname on records; empty = the OS hostname",
    "XTCP_HOSTNAME",
  ),
  f(
    "resolveContainerId",
    "resolveContainerId",
    "bool",
    "false",
    "cgroup id to container id",
    "CONTAINER_ID_RESOLVE",
  ),
  f(
    "enrichContainer",
    "enrichContainerEnable",
    "bool",
    "false",
    "Docker labels (not in this build)",
    "ENRICH_CONTAINER",
  ),
  f(
    "dockerSocket",
    "dockerSocketPath",
    "string",
    "/run/docker.sock",
    "Docker API socket",
    "DOCKER_SOCKET",
  ),
  f(
    "enrichLldp",
    "enrichLldpEnable",
    "bool",
    "false",
    "lldpd neighbours (not in this build)",
    "ENRICH_LLDP",
  ),
  f(
    "lldpdSocket",
    "lldpdSocketPath",
    "string",
    "/run/lldpd.socket",
    "lldpd socket",
    "LLDPD_SOCKET",
  ),
  f(
    "lldpdVersionHint",
    "lldpdVersionHint",
    "string",
    "",
    "lldpd layout hint",
    "LLDPD_VERSION_HINT",
  ),
  f(
    "enrichNic",
    "enrichNicEnable",
    "bool",
    "false",
    "NIC identity (not in this build)",
    "ENRICH_NIC",
  ),
  f("uplinkCount", "uplinkCount", "uint", "2", "uplink slots (max 2)", "UPLINK_COUNT"),
  f(
    "uplinkInterfaces",
    "uplinkInterfaces",
    "list",
    "",
    "comma list of uplink interfaces (max 2)",
    "UPLINK_INTERFACES",
  ),
  f(
    "populateNsid",
    "populateNsid",
    "bool",
    "false",
    "fill nsid (not in this build)",
    "POPULATE_NSID",
  ),
  f("ipv4Ttl", "ipv4Ttl", "uint", "0", "TTL of our listening sockets; 0 = default", "IPV4_TTL"),
  f(
    "ipv6HopLimit",
    "ipv6HopLimit",
    "uint",
    "0",
    "hop limit of our listening sockets; 0 = default",
    "IPV6_HOP_LIMIT",
  ),
  f("grpcPort", "grpcPort", "uint", "8889", "gRPC port", "GRPC_PORT"),
  f(
    "deserializers",
    "enabledDeserializers",
    "deserializers",
    "default",
    'default, all, "" or a comma list of decoders',
    "DESERIALIZERS",
  ),
  f("ioUring", "ioUring", "bool", "false", "io_uring netlink reads", undefined),
  f(
    "pipeline",
    "pipeline",
    "bool",
    "false",
    "decode and encode in a worker thread while this one receives (lower wall time, more CPU)",
    "PIPELINE",
  ),
  f(
    "fileMaxBytes",
    "fileMaxBytes",
    "uint64",
    "0",
    "file: destination: rotate above this size; 0 = 64 MiB",
    "FILE_MAX_BYTES",
  ),
  f(
    "fileMaxAge",
    "fileMaxAge",
    "duration",
    "0s",
    "file: destination: rotate after this age; 0 = 1h",
    "FILE_MAX_AGE",
  ),
  f("ioUringRecvBatch", "ioUringRecvBatchSize", "uint", "64", "recvmsg SQEs in flight", undefined),
  f("ioUringCqeBatch", "ioUringCqeBatchSize", "uint", "128", "CQEs reaped per peek", undefined),
  f("pyroscopeUrl", "pyroscopeUrl", "string", "", "accepted for compatibility", undefined),
  f(
    "pyroscopeAppName",
    "pyroscopeAppName",
    "string",
    "xtcp2",
    "accepted for compatibility",
    undefined,
  ),
  f(
    "pyroscopeSampleHz",
    "pyroscopeSampleHz",
    "uint",
    "100",
    "accepted for compatibility",
    undefined,
  ),
  f(
    "pyroscopeUploadSec",
    "pyroscopeUploadIntervalSec",
    "uint",
    "15",
    "accepted for compatibility",
    undefined,
  ),
  f(
    "d",
    "debugLevel",
    "uint",
    "1",
    "verbosity: 0 errors only, 1 one summary line per poll, >10 more",
    "DEBUG_LEVEL",
  ),
];

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
  },
} as const;

/** Name of a process flag. */
export type ProcessFlag = keyof typeof PROCESS_FLAGS;

const PROCESS_FLAG_BY_NAME = new Map(
  (Object.keys(PROCESS_FLAGS) as ProcessFlag[]).map((k) => [k.toLowerCase(), k]),
);

/** A configuration that cannot be used: one line naming the flag, the value and the rule. */
export class ConfigError extends Error {
  /** @param message the problem */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Milliseconds → Duration. */
export function msToDuration(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((ms - seconds * 1000) * 1e6),
  });
}

/** Duration → milliseconds (0 when unset). */
export function durationMs(d: Duration | undefined): number {
  return d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0;
}

function setFromText(cfg: XtcpConfig, spec: FlagSpec, text: string, source: string): void {
  const bad = (rule: string) => new ConfigError(`Invalid value for ${source}: "${text}": ${rule}`);
  const c = cfg as unknown as Record<string, unknown>;
  switch (spec.kind) {
    case "duration": {
      let ms: number;
      try {
        ms = parseDuration(text);
      } catch {
        throw bad("must be a duration such as 10s, 500ms, 1m30s");
      }
      c[spec.field] = msToDuration(ms);
      return;
    }
    case "uint":
    case "uint64": {
      if (!/^\d+$/.test(text.trim())) throw bad("must be a non-negative integer");
      const n = BigInt(text.trim());
      if (spec.kind === "uint") {
        if (n > 0xffffffffn) throw bad("must be below 2^32");
        c[spec.field] = Number(n);
      } else c[spec.field] = n;
      return;
    }
    case "bool": {
      const t = text.trim().toLowerCase();
      if (["1", "t", "true", "yes"].includes(t)) c[spec.field] = true;
      else if (["0", "f", "false", "no"].includes(t)) c[spec.field] = false;
      else throw bad("must be true or false");
      return;
    }
    case "string":
      c[spec.field] = text;
      return;
    case "list":
      c[spec.field] = text.split(",").map((s) => s.trim()).filter((s) => s);
      return;
    case "deserializers": {
      const names = text.trim() === "all"
        ? DECODER_NAMES
        : text.trim() === "default"
        ? DECODER_NAMES.filter((n) => n !== "meminfo")
        : text.split(",").map((s) => s.trim()).filter((s) => s);
      for (const n of names) {
        if (!(n in DECODERS)) {
          throw bad(
            `unknown decoder "${n}"; valid: default, all, or a comma list of ${
              DECODER_NAMES.join(", ")
            }`,
          );
        }
      }
      c[spec.field] = create(EnabledDeserializersSchema, {
        enabled: Object.fromEntries(names.map((n) => [n, true])),
      });
      return;
    }
  }
}

/** The built-in defaults. */
export function defaultConfig(): XtcpConfig {
  const cfg = create(XtcpConfigSchema, {});
  for (const spec of FLAGS) setFromText(cfg, spec, spec.def, `--${spec.flag}`);
  cfg.netlinkersDoneChanSize = 100;
  return cfg;
}

/** What the command line asked for besides the configuration. */
export interface LoadedConfig {
  config: XtcpConfig;
  /** `-v`: print the version and exit. */
  version: boolean;
  /** `-conf`: print the resolved configuration and exit. */
  conf: boolean;
  /** `-healthcheck`: probe the running daemon and exit. */
  healthcheck: boolean;
  /** `-h`/`--help`. */
  help: boolean;
  /** Process flags (listeners, token, stream queue), by name. */
  process: Record<ProcessFlag, string>;
  /** Where each setting came from, for --conf. */
  sources: Map<string, string>;
}

const FLAG_BY_NAME = new Map(FLAGS.map((s) => [s.flag.toLowerCase(), s]));

/**
 * Resolves the configuration: defaults < flags < environment < XTCP_CONFIG_JSON, then validates
 * it. Throws ConfigError (one line) on the first problem.
 *
 * @example
 * ```ts
 * const { config } = loadConfig(["-frequency", "30s", "-timeout", "10s"], {});
 * ```
 */
export function loadConfig(
  args: readonly string[],
  env: Record<string, string | undefined>,
): LoadedConfig {
  const cfg = defaultConfig();
  const out: LoadedConfig = {
    config: cfg,
    version: false,
    conf: false,
    healthcheck: false,
    help: false,
    process: Object.fromEntries(
      Object.entries(PROCESS_FLAGS).map(([k, v]) => [k, v.def]),
    ) as Record<ProcessFlag, string>,
    sources: new Map(),
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--?([A-Za-z][\w.]*)(?:=(.*))?$/.exec(a);
    if (!m) {
      throw new ConfigError(`Unexpected argument "${a}": flags start with - or -- (see --help)`);
    }
    const name = m[1];
    let value = m[2];
    const lower = name.toLowerCase();
    const boolish = (target: (v: boolean) => void) => {
      if (value === undefined) target(true);
      else target(["1", "t", "true"].includes(value.toLowerCase()));
    };
    if (lower === "v" || lower === "version") {
      boolish((v) => (out.version = v));
      continue;
    }
    if (lower === "conf") {
      boolish((v) => (out.conf = v));
      continue;
    }
    if (lower === "healthcheck") {
      boolish((v) => (out.healthcheck = v));
      continue;
    }
    if (lower === "h" || lower === "help") {
      out.help = true;
      continue;
    }
    const proc = PROCESS_FLAG_BY_NAME.get(lower);
    if (proc) {
      if (value === undefined) value = args[++i];
      if (value === undefined) throw new ConfigError(`Flag --${name} needs a value`);
      out.process[proc] = value;
      continue;
    }
    const spec = FLAG_BY_NAME.get(lower);
    if (!spec) throw new ConfigError(`Unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (spec.kind === "bool" && (i + 1 >= args.length || args[i + 1].startsWith("-"))) {
        value = "true";
      } else value = args[++i];
    }
    if (value === undefined) throw new ConfigError(`Flag --${spec.flag} needs a value`);
    setFromText(cfg, spec, value, `--${spec.flag}`);
    out.sources.set(spec.field, "flag");
  }
  for (const spec of FLAGS) {
    if (!spec.env) continue;
    const v = env[spec.env];
    if (v === undefined) continue;
    setFromText(cfg, spec, v, `${spec.env} (environment)`);
    out.sources.set(spec.field, "env");
  }
  for (
    const [key, envName] of [["s3AccessKey", "S3_ACCESS_KEY_FILE"], [
      "s3SecretKey",
      "S3_SECRET_KEY_FILE",
    ]]
  ) {
    const path = env[envName];
    if (!path) continue;
    try {
      (cfg as unknown as Record<string, unknown>)[key] = Deno.readTextFileSync(path).trim();
      out.sources.set(key, "env file");
    } catch (err) {
      throw new ConfigError(`Cannot read ${envName}=${path}: ${(err as Error).message}`);
    }
  }
  for (const [k, spec] of Object.entries(PROCESS_FLAGS) as [ProcessFlag, { env: string }][]) {
    const v = env[spec.env];
    if (v) out.process[k] = v;
  }
  const q = Number(out.process.streamQueue);
  if (!Number.isInteger(q) || q < 1 || q > 1_000_000) {
    throw new ConfigError(
      `Invalid value for --streamQueue: "${out.process.streamQueue}": must be an integer from 1 to 1000000`,
    );
  }
  const json = env.XTCP_CONFIG_JSON;
  if (json) {
    let parsed: XtcpConfig;
    try {
      parsed = fromJsonString(XtcpConfigSchema, json);
    } catch (err) {
      throw new ConfigError(`Invalid XTCP_CONFIG_JSON: ${(err as Error).message}`);
    }
    out.config = parsed;
    out.sources.clear();
    out.sources.set("*", "XTCP_CONFIG_JSON");
  }
  if (!out.version && !out.help && !out.healthcheck) {
    const problems = validateConfig(out.config);
    if (problems.length) throw new ConfigError(problems[0]);
  }
  return out;
}

/** Marshallers the daemon knows. */
export const MARSHALLERS = [
  "protobufList",
  "protoJson",
  "protoText",
  "msgpack",
  "jsonl",
  "csv",
  "tsv",
];
/** Destination schemes implemented in this build. */
export const DEST_SCHEMES = [
  "kafka",
  "null",
  "stdout",
  "stderr",
  "file",
  "udp",
  "unix",
  "unixgram",
  "nats",
  "nsq",
  "valkey",
  "redis",
];
/** Schemes of the original that this build does not implement yet. */
export const FUTURE_SCHEMES = [
  "s3parquet",
  "tcp",
  "http",
  "https",
];

function flagOf(field: string): string {
  const spec = FLAGS.find((s) => s.field === field);
  return spec ? `--${spec.flag}` : field;
}

/**
 * Every rule of the configuration (reference §1.3, plus destination and column checks); returns
 * one message per violation, each naming the flag, the value and the rule.
 */
export function validateConfig(cfg: XtcpConfig): string[] {
  const out: string[] = [];
  const c = cfg as unknown as Record<string, unknown>;
  const range = (field: string, min: number, max: number) => {
    const v = Number(c[field]);
    if (v < min || v > max) {
      out.push(`Invalid value for ${flagOf(field)}: "${v}": must be from ${min} to ${max}`);
    }
  };
  const len = (field: string, min: number, max: number) => {
    const v = String(c[field] ?? "");
    if (v.length < min || v.length > max) {
      out.push(`Invalid value for ${flagOf(field)}: "${v}": length must be from ${min} to ${max}`);
    }
  };
  const dur = (field: string, minMs: number, maxMs: number, minExclusive = false) => {
    const d = c[field] as Duration | undefined;
    const ms = durationMs(d);
    if ((minExclusive ? ms <= minMs : ms < minMs) || ms > maxMs) {
      out.push(
        `Invalid value for ${flagOf(field)}: "${formatDuration(ms)}": must be ${
          minExclusive ? "above" : "at least"
        } ${formatDuration(minMs)} and at most ${formatDuration(maxMs)}`,
      );
    }
  };
  const WEEK = 7 * 24 * 3600 * 1000;
  range("nlTimeoutMilliseconds", 0, 100000);
  dur("pollFrequency", 0, WEEK, true);
  dur("pollTimeout", 0, WEEK, true);
  if (durationMs(cfg.pollTimeout) >= durationMs(cfg.pollFrequency)) {
    out.push(
      `Invalid value for --timeout: "${
        formatDuration(durationMs(cfg.pollTimeout))
      }": Poll timeout must be less than poll poll_frequency (${
        formatDuration(durationMs(cfg.pollFrequency))
      })`,
    );
  }
  range("maxLoops", 0, 100000);
  dur("fileMaxAge", 0, WEEK);
  range("fileMaxBytes", 0, 2 ** 50);
  range("netlinkers", 1, 100);
  range("netlinkersDoneChanSize", 1, 1000);
  range("nlmsgSeq", 0, 10000);
  range("packetSize", 0, 1e6);
  range("packetSizeMply", 0, 100);
  range("writeFiles", 0, 1000);
  len("capturePath", 1, 80);
  range("modulus", 1, 1e6);
  len("marshalTo", 3, 40);
  if (!MARSHALLERS.includes(cfg.marshalTo)) {
    out.push(
      `Invalid value for --marshal: "${cfg.marshalTo}": valid marshallers are ${
        MARSHALLERS.join(", ")
      }`,
    );
  }
  len("dest", 4, 512);
  const destProblem = checkDest(cfg.dest);
  if (destProblem) out.push(`Invalid value for --dest: "${cfg.dest}": ${destProblem}`);
  range("destWriteFiles", 0, 1000);
  len("topic", 1, 40);
  len("xtcpProtoFile", 1, 80);
  len("kafkaSchemaUrl", 1, 60);
  const codecs = ["", "auto", "none", "gzip", "zstd", "lz4", "snappy"];
  if (!codecs.includes(cfg.kafkaCompression)) {
    out.push(
      `Invalid value for --kafkaCompression: "${cfg.kafkaCompression}": must be one of auto, none, gzip, zstd, lz4, snappy`,
    );
  }
  dur("kafkaProduceTimeout", 0, 600_000);
  range("debugLevel", 0, 1000);
  len("label", 0, 40);
  len("tag", 0, 40);
  len("location", 0, 253);
  len("hostname", 0, 253);
  len("daemonVersion", 0, 253);
  range("ipv4Ttl", 0, 255);
  range("ipv6HopLimit", 0, 255);
  range("grpcPort", 1, 65535);
  range("ioUringRecvBatchSize", 1, 4096);
  range("ioUringCqeBatchSize", 1, 4096);
  range("pollJitterPct", 0, 100);
  range("s3FlushJitterPct", 0, 100);
  range("s3FlushThresholdJitterPct", 0, 100);
  range("s3UploadMaxAttempts", 1, 100);
  len("dockerSocketPath", 0, 255);
  len("lldpdSocketPath", 0, 255);
  len("lldpdVersionHint", 0, 16);
  range("uplinkCount", 0, 2);
  if (cfg.uplinkInterfaces.length > 2) {
    out.push(
      `Invalid value for --uplinkInterfaces: "${
        cfg.uplinkInterfaces.join(",")
      }": at most 2 interfaces`,
    );
  }
  if (cfg.csvColumns && (cfg.marshalTo === "csv" || cfg.marshalTo === "tsv")) {
    const known = new Set(FIELDS.map((fs) => fs.json));
    for (const col of cfg.csvColumns.split(",").map((s) => s.trim())) {
      if (!known.has(col)) out.push(`Invalid value for --columns: "${col}": unknown column`);
    }
  }
  for (const name of Object.keys(cfg.enabledDeserializers?.enabled ?? {})) {
    if (!(name in DECODERS)) {
      out.push(`Invalid value for --deserializers: "${name}": unknown decoder`);
    }
  }
  return out;
}

/** Returns a problem with a destination spec, or undefined when it is usable. */
export function checkDest(dest: string): string | undefined {
  if (dest === "null" || dest === "stdout" || dest === "stderr") return undefined;
  const m = /^([a-z0-9]+):(.*)$/.exec(dest);
  if (!m) {
    return `must be null, stdout, stderr or scheme:address (schemes: ${DEST_SCHEMES.join(", ")})`;
  }
  const [, scheme, rest] = m;
  if (FUTURE_SCHEMES.includes(scheme)) {
    return `destination ${scheme} is not available in this build yet (available: ${
      DEST_SCHEMES.join(", ")
    })`;
  }
  if (!DEST_SCHEMES.includes(scheme)) {
    return `unknown destination scheme "${scheme}"; valid schemes are ${DEST_SCHEMES.join(", ")}`;
  }
  if (scheme === "null") return undefined;
  const addr = rest.replace(/^\/\//, "");
  if (scheme === "file" || scheme === "unix" || scheme === "unixgram") {
    return addr ? undefined : `${scheme}: needs a path`;
  }
  // udp: HOST:PORT, [v6]:PORT, v6 literal with port after the last colon.
  const hp = /^(\[[^\]]+\]|[^:\[\]]+|[0-9a-fA-F:]+):(\d+)$/.exec(addr);
  if (!hp) return `${scheme}: needs HOST:PORT (IPv6 as [addr]:port)`;
  const port = Number(hp[2]);
  if (port < 1 || port > 65535) return `${scheme}: port must be from 1 to 65535`;
  return undefined;
}

/** The configuration with secrets blanked, as protojson (for --conf, logs and the API). */
export function redactedJson(cfg: XtcpConfig): string {
  const copy = clone(XtcpConfigSchema, cfg);
  for (const spec of FLAGS) {
    if (spec.secret && (copy as unknown as Record<string, unknown>)[spec.field]) {
      (copy as unknown as Record<string, unknown>)[spec.field] = "";
    }
  }
  return toJsonString(XtcpConfigSchema, copy, { prettySpaces: 2, alwaysEmitImplicit: true });
}

/** The decoder bitmask of a configuration. */
export function decoderMask(cfg: XtcpConfig): number {
  let mask = 0;
  for (const [name, on] of Object.entries(cfg.enabledDeserializers?.enabled ?? {})) {
    if (on && name in DECODERS) mask |= 1 << DECODERS[name];
  }
  return mask;
}

/** Effective envelope thresholds (0 = defaults 10,000 rows, 768 KiB). */
export function envelopeLimits(cfg: XtcpConfig): { rows: number; bytes: number } {
  return {
    rows: cfg.envelopeFlushThresholdRows || 10000,
    bytes: cfg.envelopeFlushThresholdBytes || 786432,
  };
}

/** Rotation limits of file: destinations (0 = 64 MiB and 1 h). */
export function fileLimits(cfg: XtcpConfig): { fileMaxBytes: number; fileMaxAgeMs: number } {
  return {
    fileMaxBytes: Number(cfg.fileMaxBytes) || 64 * 1024 * 1024,
    fileMaxAgeMs: durationMs(cfg.fileMaxAge) || 3_600_000,
  };
}

/** Receive buffer size: packetSize (0 = 4096) × packetSizeMply (0 = 8), at least 32 KiB. */
export function recvBufferSize(cfg: XtcpConfig): number {
  return Math.max(32 * 1024, (Number(cfg.packetSize) || 4096) * (cfg.packetSizeMply || 8));
}
