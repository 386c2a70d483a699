/**
 * Where flushes go: the one interface every destination implements, and the options that shape
 * them. Each destination lives in its own file; `registry.ts` opens them by `--dest` spec.
 *
 * @module
 */
import type { Counters, Logger } from "../util/log.ts";
import type { ParquetCodec } from "../format/parquet_codec.ts";

/**
 * How a flush's bytes are cut: `message` is one self-contained unit (an Envelope, a JSON
 * document), `lines` newline-terminated records that may be split at line ends.
 */
export type Framing = "message" | "lines";

/**
 * A place flushes are sent to. Dispose of it (`await using`) to flush and release everything.
 *
 * @example
 * ```ts
 * await using dest = await openDestination("nats:127.0.0.1:4222", options);
 * await dest.send(bytes, "message");
 * ```
 */
export interface Destination extends AsyncDisposable {
  /** Scheme, for counters and logs. */
  readonly scheme: string;
  /**
   * Delivers one flush and resolves once the destination acknowledged it by its own notion of
   * success (a broker's reply, a completed write); rejects otherwise, with an error that
   * `errorKind` from `src/util/errors.ts` classifies. The caller leaves `bytes` as they are while
   * the send is pending and after it rejected (a timed-out send may still be read by the client);
   * it may reuse them once the promise resolved, so a destination that reads them after it
   * acknowledged (a client that may still retry an earlier attempt on its own) copies them.
   */
  send(bytes: Uint8Array, framing: Framing): Promise<void>;
  /**
   * Whether `send` takes views of a SharedArrayBuffer (socket writes do; `crypto.subtle` and
   * some clients refuse them) and reads the bytes only until its promise settled (a failed
   * write closes the connection at once): the delivery queue then holds the poller's flushes on
   * loan instead of copying them, and gives each back once its send settled for good.
   */
  readonly sharedViews?: boolean;
}

/**
 * A destination that writes in place: {@link SyncDestination.sendSync} is done with the bytes
 * when it returns (and throws its errors), so the poller hands it each envelope without a copy.
 */
export interface SyncDestination extends Destination {
  /** Always true. */
  readonly sync: true;
  /** Writes one flush now; throws on failure. */
  sendSync(bytes: Uint8Array, framing: Framing): void;
}

/**
 * Whether `d` writes in place.
 *
 * @example
 * ```ts
 * if (isSync(dest)) dest.sendSync(bytes, "lines");
 * ```
 */
export function isSync(d: Destination): d is SyncDestination {
  return (d as Partial<SyncDestination>).sync === true;
}

/** A destination whose upload timing the API changes (s3parquet, `SetS3Upload`). */
export interface S3UploadControl {
  /** A new staleness interval (at once) and/or size threshold (from the next object). */
  setUpload(intervalMs: number | undefined, thresholdBytes: number | undefined): void;
}

/**
 * Whether `d` takes {@link S3UploadControl.setUpload}.
 *
 * @example
 * ```ts
 * if (hasUploadControl(dest)) dest.setUpload(60_000, undefined);
 * ```
 */
export function hasUploadControl(d: Destination): d is Destination & S3UploadControl {
  return typeof (d as Partial<S3UploadControl>).setUpload === "function";
}

/** Kafka codecs (`--kafkaCompression`); "" and "auto" mean none, as in the original. */
export const KAFKA_COMPRESSIONS = ["", "auto", "none", "gzip", "snappy", "lz4", "zstd"] as const;

/** A `--kafkaCompression` value. */
export type KafkaCompression = (typeof KAFKA_COMPRESSIONS)[number];

/** What a full delivery queue does. */
export const FULL_POLICIES = ["drop_oldest", "drop_newest", "block"] as const;

/** A {@link FULL_POLICIES} value. */
export type FullPolicy = (typeof FULL_POLICIES)[number];

/** How flushes reach a network destination (see the delivery queue, `queue.ts`). */
export interface DeliverySettings {
  /** Queue size in memory (bytes). */
  maxBytes: number;
  full: FullPolicy;
  retryInitialMs: number;
  retryMaxMs: number;
  /** Spool directory ("" = none) and size. */
  spoolDir: string;
  spoolMaxBytes: number;
  /** How long shutdown waits for the queue. */
  shutdownDrainMs: number;
}

/** What an s3parquet destination is given (derived from the configuration). */
export interface S3ParquetOptions {
  endpoint: string;
  bucket: string;
  prefix: string;
  region: string;
  accessKey: string;
  secretKey: string;
  skipBucketProbe: boolean;
  /** Hostname in the keys (sanitized here). */
  hostname: string;
  /** Size threshold of an object (PLAIN bytes; 0 = 63 MiB), downward jitter in %. */
  flushBytes: number;
  thresholdJitterPct: number;
  /** Staleness interval (ms, > 0) and its jitter in %. */
  flushIntervalMs: number;
  flushJitterPct: number;
  /** PUT attempts of one object per try of the queue, and the cap of the delay between them. */
  uploadMaxAttempts: number;
  uploadBackoffCapMs: number;
  codec: ParquetCodec;
  /** The delivery queue of objects. */
  queue: DeliverySettings;
  /** Multipart part size (default 16 MiB; tests make it smaller). */
  partBytes?: number;
}

/** Options that shape destinations. */
export interface DestOptions {
  /** The marshaller's name: protobufList flushes are split at rows, files rotate per flush. */
  marshal: string;
  /** Kafka topic / NATS subject / NSQ topic / Valkey channel (`--topic`). */
  topic: string;
  /** `--kafkaCompression` (kafka: only). */
  kafkaCompression?: string;
  /** kafka: schema registry URL (`--kafkaSchemaUrl`); the proto is registered when both are set. */
  kafkaSchemaUrl?: string;
  /** kafka: the .proto registered with the schema registry (`--xtcpProtoFile`). */
  xtcpProtoFile?: string;
  /** valkey-stream: XADD MAXLEN ~ this (0 = 100). */
  streamMaxLen?: number;
  /** How long one send may wait for the peer, in ms (`--produceTimeout`; 0 = the default). */
  sendTimeoutMs?: number;
  /** https: PEM file of CA certificates trusted besides the default roots (`--httpCaFile`). */
  httpCaFile?: string;
  /** file: rotation size. */
  fileMaxBytes: number;
  /** file: rotation age. */
  fileMaxAgeMs: number;
  /** s3parquet: where and how objects are written. */
  s3?: S3ParquetOptions;
  /** Where sends, errors and drops are counted. */
  counters: Counters;
  /** Where connection events are logged. */
  log: Logger;
  /** Aborted at shutdown: connects and waits give up. */
  signal?: AbortSignal;
}

/** How long a send may wait for the peer when `sendTimeoutMs` is 0. */
export const DEFAULT_SEND_TIMEOUT_MS = 5000;

/**
 * How long one send may wait for the peer, in ms: `--produceTimeout`, or when it is 0 the
 * destination's own default (`fallbackMs`, {@link DEFAULT_SEND_TIMEOUT_MS} unless given).
 *
 * @example
 * ```ts
 * await withTimeout(publish(), sendTimeoutMs(opts), "PUBLISH");
 * sendTimeoutMs({ sendTimeoutMs: 0 }, 10_000); // 10000
 * ```
 */
export function sendTimeoutMs(
  o: Pick<DestOptions, "sendTimeoutMs">,
  fallbackMs = DEFAULT_SEND_TIMEOUT_MS,
): number {
  return o.sendTimeoutMs || fallbackMs;
}

/** Base of the destinations that write in place: `send` is `sendSync`, as a promise. */
export abstract class SyncDest implements SyncDestination {
  /** Scheme, for counters and logs. */
  abstract readonly scheme: string;
  /** Writes in place. */
  readonly sync = true;
  /** Writes one flush now; throws on failure. */
  abstract sendSync(bytes: Uint8Array, framing: Framing): void;
  /** Releases what the destination holds. */
  abstract [Symbol.asyncDispose](): Promise<void>;
  /** {@link SyncDest.sendSync}, settled as a promise. */
  send(bytes: Uint8Array, framing: Framing): Promise<void> {
    try {
      this.sendSync(bytes, framing);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
