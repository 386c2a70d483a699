/**
 * `s3parquet:[ENDPOINT]`: the rows of every protobufList flush go into the columns of one Parquet
 * object in memory (see `src/format/parquet_records.ts`); the object is finished at the jittered
 * size threshold, at the staleness timer or at shutdown (never empty), and handed to a
 * {@link DeliveryQueue} (and its spool, where there is one) whose destination uploads it: PUT, or
 * a multipart upload above {@link MULTIPART_BYTES}. An S3 outage shorter than the queue loses no
 * row: the object waits in the queue (or on disk) and goes up once S3 answers again.
 *
 * Keys: `[prefix/]host=<sanitized hostname>/date=YYYY-MM-DD/hour=HH/<unix seconds>_<8 hex>.parquet`
 * (UTC, when the object was finished), fixed per object: a retried upload overwrites the same key,
 * so an object is never stored twice.
 *
 * @module
 */
import { loadCodec } from "../format/parquet.ts";
import { ParquetObject } from "../format/parquet_records.ts";
import { errorMessage, RefusedError } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import type {
  DestOptions,
  S3ParquetOptions,
  S3UploadControl,
  SyncDestination,
} from "./destination.ts";
import { type Backlog, deliveryAccount, DeliveryQueue, type QueueingDestination } from "./queue.ts";
import { S3Client, S3Error, uploadErrorClass } from "./s3.ts";
import { Spool } from "./spool.ts";

/** Objects above this size go up as multipart uploads (parts of this size). */
export const MULTIPART_BYTES = 16 << 20;

/** The default size threshold (`-s3ParquetFlushBytes 0`). */
export const DEFAULT_FLUSH_BYTES = 63 << 20;

const FN = "destS3Parquet";

/**
 * A hostname as a key segment: `[A-Za-z0-9._-]` kept, anything else `_`, `..` → `_`, empty →
 * `unknown`.
 *
 * @example
 * ```ts
 * sanitizeHost("web 1/../x"); // "web_1___x"
 * ```
 */
export function sanitizeHost(h: string): string {
  const s = h.replace(/[^A-Za-z0-9._-]/g, "_").replaceAll("..", "_");
  return s || "unknown";
}

/**
 * The key of an object finished at `now`.
 *
 * @example
 * ```ts
 * objectKey("xtcp", "h", new Date(0), 0xdeadbeef); // "xtcp/host=h/date=1970-01-01/hour=00/0_deadbeef.parquet"
 * ```
 */
export function objectKey(prefix: string, host: string, now: Date, rand: number): string {
  const iso = now.toISOString();
  const p = prefix.replace(/^\/+|\/+$/g, "");
  return `${p ? `${p}/` : ""}host=${sanitizeHost(host)}/date=${iso.slice(0, 10)}/hour=${
    iso.slice(11, 13)
  }/${Math.floor(now.getTime() / 1000)}_${(rand >>> 0).toString(16).padStart(8, "0")}.parquet`;
}

/** `value` less up to `pct` % of it, at random (the per-object threshold). */
function jitterDown(value: number, pct: number): number {
  return Math.max(1, Math.floor(value - Math.random() * value * Math.min(100, pct) / 100));
}

/** `ms` ± half of `pct` % of it, at random (the staleness timer). */
function jitterAround(ms: number, pct: number): number {
  const j = ms * Math.min(100, pct) / 100;
  return Math.max(1, ms - j / 2 + Math.random() * j);
}

/** An object in the queue: u16 key length, the key, the Parquet bytes. */
function frameObject(key: string, obj: ParquetObject): Uint8Array {
  const k = new TextEncoder().encode(key);
  const out = obj.finish(2 + k.length);
  out[0] = k.length & 0xff;
  out[1] = k.length >>> 8;
  out.set(k, 2);
  return out;
}

function unframeObject(b: Uint8Array): { key: string; file: Uint8Array } {
  const n = (b[0] ?? 0) | ((b[1] ?? 0) << 8);
  return { key: new TextDecoder().decode(b.subarray(2, 2 + n)), file: b.subarray(2 + n) };
}

/** Uploads queued objects: the destination of the object queue. */
class Uploader {
  readonly scheme = "s3parquet";

  constructor(
    private readonly s3: S3Client,
    private readonly o: S3ParquetOptions,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  /** Aborted once the queue let go of the uploader (shutdown): no further attempt. */
  private readonly done = new AbortController();

  private sleep(ms: number): Promise<void> {
    const signal = this.done.signal;
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      signal.addEventListener("abort", wake);
    });
  }

  /**
   * Up to `uploadMaxAttempts` attempts, sleeping rand[0, min(cap, 1 s × 2^(n−1))) between them;
   * each failure counted (uploadRetry, uploadErrorClass). When every attempt failed the object
   * goes back to the queue (which tries again later); a 4xx that says it never will is a
   * RefusedError (the queue drops the object after a few tries, counted).
   */
  async send(bytes: Uint8Array): Promise<void> {
    const { key, file } = unframeObject(bytes);
    const c = this.counters;
    const part = this.o.partBytes ?? MULTIPART_BYTES;
    let last: unknown;
    for (let attempt = 1; attempt <= this.o.uploadMaxAttempts; attempt++) {
      const t0 = performance.now();
      try {
        if (file.length > part) await this.s3.putMultipart(key, file, part);
        else await this.s3.putObject(key, file);
        c.inc(FN, "upload", "count");
        c.inc(FN, "uploadBytes", "count", file.length);
        c.inc(FN, "uploadDuration", "ms", Math.round(performance.now() - t0));
        this.log.debug(`s3parquet: uploaded ${key} (${file.length} bytes)`);
        return;
      } catch (err) {
        last = err;
        c.inc(FN, "uploadRetry", "error");
        c.inc(FN, "uploadErrorClass", uploadErrorClass(err));
        this.log.error(
          `s3parquet: upload of ${key} failed (attempt ${attempt} of ${this.o.uploadMaxAttempts}): ${
            errorMessage(err)
          }`,
        );
        if (err instanceof S3Error && !err.retriable && err.status !== 403) break;
        if (this.done.signal.aborted) break;
        if (attempt < this.o.uploadMaxAttempts) {
          const cap = Math.min(this.o.uploadBackoffCapMs, 1000 * 2 ** (attempt - 1));
          await this.sleep(Math.random() * cap);
        }
      }
    }
    c.inc(FN, "upload", "error");
    if (
      last instanceof S3Error && last.status >= 400 && last.status < 500 && !last.retriable &&
      last.status !== 403
    ) {
      throw new RefusedError(errorMessage(last), { cause: last });
    }
    throw last;
  }

  /** Stops retrying (what is left in the queue was spooled or counted by then). */
  [Symbol.asyncDispose](): Promise<void> {
    this.done.abort();
    return Promise.resolve();
  }
}

/**
 * The s3parquet destination. It takes each flush in place (its rows are decoded into the
 * object's columns during the call); the finished objects go through its own delivery queue.
 */
export class S3ParquetDest implements SyncDestination, S3UploadControl, QueueingDestination {
  /** Always "s3parquet". */
  readonly scheme = "s3parquet";
  /** Takes flushes in place. */
  readonly sync = true;
  private object: ParquetObject | undefined;
  private cap = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private thresholdBytes: number;
  private intervalMs: number;

  private constructor(
    private readonly o: S3ParquetOptions,
    private readonly queue: DeliveryQueue,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {
    this.thresholdBytes = o.flushBytes || DEFAULT_FLUSH_BYTES;
    this.intervalMs = o.flushIntervalMs;
  }

  /**
   * Checks the configuration, loads the codec, probes the bucket (HeadBucket, unless
   * skipped: a missing bucket or refused credentials end the startup, with the server's error
   * code) and starts the object queue.
   */
  static async open(address: string, opts: DestOptions): Promise<S3ParquetDest> {
    const o = opts.s3;
    if (!o) throw new TypeError("s3parquet: no s3 options");
    if (opts.marshal !== "protobufList") {
      throw new RangeError(
        `s3parquet: needs -marshal protobufList (its rows are decoded into Parquet), not ${opts.marshal}`,
      );
    }
    const endpoint = address || o.endpoint;
    if (!endpoint) {
      throw new RangeError("s3parquet: no endpoint: -dest s3parquet:URL or -s3Endpoint URL");
    }
    if (!o.bucket) throw new RangeError("s3parquet: -s3Bucket is required");
    const s3 = new S3Client({
      endpoint,
      bucket: o.bucket,
      region: o.region || "us-east-1",
      accessKey: o.accessKey,
      secretKey: o.secretKey,
    });
    await loadCodec(o.codec);
    if (!o.skipBucketProbe) {
      try {
        await s3.headBucket();
      } catch (err) {
        const code = err instanceof S3Error ? err.code : "";
        const why = code === "NoSuchBucket" || (err instanceof S3Error && err.status === 404)
          ? `bucket "${o.bucket}" does not exist at ${endpoint} (it is never created: create it, or check -s3Bucket)`
          : `bucket probe failed${code ? ` (${code})` : ""}`;
        throw new Error(`s3parquet: ${why}: ${errorMessage(err)}`, { cause: err });
      }
    }
    const { counters, log } = opts;
    const q = o.queue;
    const spool = q.spoolDir
      ? Spool.open(q.spoolDir, { maxBytes: q.spoolMaxBytes, counters, log })
      : undefined;
    const queue = new DeliveryQueue(new Uploader(s3, o, counters, log), {
      maxBytes: q.maxBytes,
      full: q.full,
      retryInitialMs: q.retryInitialMs,
      retryMaxMs: q.retryMaxMs,
      framing: "message",
      ...(spool ? { spool } : {}),
      counters,
      log,
    });
    log.info(
      `s3parquet: ${s3.where}${o.prefix ? `/${o.prefix}` : ""}, objects at ${
        Math.round(o.flushBytes / 1024) || DEFAULT_FLUSH_BYTES / 1024
      } KiB (-${o.thresholdJitterPct} %) or every ${o.flushIntervalMs} ms (±${
        o.flushJitterPct / 2
      } %), ${o.codec}`,
    );
    return new S3ParquetDest(o, queue, counters, log);
  }

  /** The objects waiting to be uploaded (in memory and spooled), as the queue counts them. */
  backlog(): Backlog {
    return this.queue.backlog();
  }

  /** Resolves once the object queue has room (only ever waits with the block policy). */
  room(): Promise<void> {
    return this.queue.room();
  }

  /** Decodes one protobufList flush into the object; finishes it at its size threshold. */
  sendSync(bytes: Uint8Array): void {
    if (this.closed) throw new Error("s3parquet: closed");
    if (!this.object) {
      this.object = new ParquetObject(this.o.codec);
      this.cap = jitterDown(this.thresholdBytes, this.o.thresholdJitterPct);
      this.arm();
    }
    try {
      this.object.append(bytes);
    } catch (err) {
      this.counters.inc(FN, "unmarshal", "error");
      throw err;
    }
    if (this.object.size >= this.cap) this.finish("size");
  }

  /** Takes a flush in place (see {@link S3ParquetDest.sendSync}). */
  send(bytes: Uint8Array): Promise<void> {
    try {
      this.sendSync(bytes);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** (Re-)arms the staleness timer from now. */
  private arm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.finish("interval"),
      jitterAround(this.intervalMs, this.o.flushJitterPct),
    );
  }

  /** Finishes the object being built (if it has rows) and queues its upload. */
  private finish(reason: "size" | "interval" | "shutdown"): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const obj = this.object;
    this.object = undefined;
    if (!obj || obj.rows === 0) return;
    const key = objectKey(this.o.prefix, this.o.hostname, new Date(), Math.random() * 2 ** 32);
    let framed: Uint8Array;
    try {
      framed = frameObject(key, obj);
    } catch (err) {
      this.counters.inc(FN, "writerClose", "error");
      this.log.error(
        `s3parquet: ${obj.rows} rows lost: the object could not be written: ${errorMessage(err)}`,
      );
      return;
    }
    this.counters.inc(FN, "objects", reason);
    this.counters.inc(FN, "uploadRows", "count", obj.rows);
    const what = `${key}: ${obj.rows} rows, ${framed.length - 2 - key.length} bytes`;
    if (reason === "shutdown") this.log.info(`s3parquet: last object ${what}`);
    else this.log.debug(`s3parquet: ${what} (${reason})`);
    this.queue.beginPoll();
    this.queue.deliver(framed, obj.rows, true);
  }

  /**
   * SetS3Upload: a new staleness interval re-arms the timer of the object being built at once;
   * a new threshold applies from the next object.
   */
  setUpload(intervalMs: number | undefined, thresholdBytes: number | undefined): void {
    if (thresholdBytes !== undefined && thresholdBytes > 0) this.thresholdBytes = thresholdBytes;
    if (intervalMs !== undefined && intervalMs > 0) {
      this.intervalMs = intervalMs;
      if (this.object) this.arm();
    }
    this.counters.inc(FN, "setS3Flush", "count");
  }

  /** Finishes the last object and drains the queue (what is left is spooled or dropped). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.closed) return;
    this.finish("shutdown");
    this.closed = true;
    await this.queue.close(this.o.queue.shutdownDrainMs);
    this.log.info(deliveryAccount(this.scheme, this.counters));
    await this.queue[Symbol.asyncDispose]();
  }
}
