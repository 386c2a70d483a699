/**
 * `kafka:HOST:PORT` (kafkajs): each flush is one record (no key) of topic `--topic`, and a send
 * resolves once every in-sync replica acknowledged it (acks all). Fails at startup without the
 * broker; afterwards the client reconnects by itself and a failed produce comes back to the
 * caller to retry. At startup the proto is registered with the schema registry, when one answers
 * (schema_registry.ts; never fatal).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { CompressionTypes, Kafka, logLevel, type Producer } from "kafkajs";
import { errorMessage, RefusedError } from "../util/errors.ts";
import { registerCodec } from "./kafka_codecs.ts";
import { registerSchema } from "./schema_registry.ts";
import { withTimeout } from "../util/timeout.ts";
import {
  type Destination,
  type DestOptions,
  type KafkaCompression,
  sendTimeoutMs,
} from "./destination.ts";

/**
 * kafkajs sets a timer from a date difference that comes out negative on Deno, and Node's timers
 * warn about it on stderr at every connection (the timer fires at once, as kafkajs expects).
 * That one warning is dropped; every other warning goes through.
 */
let quieted = false;

export function quietKafkajsTimers(): void {
  if (quieted) return;
  quieted = true;
  const emit = process.emitWarning.bind(process);
  const filtered = (
    warning: string | Error,
    options?: string | { type?: string },
    ...rest: unknown[]
  ) => {
    const type = typeof options === "string"
      ? options
      : options?.type ?? (typeof warning === "string" ? undefined : warning.name);
    if (type === "TimeoutNegativeWarning") return;
    Reflect.apply(emit, process, [warning, options, ...rest]);
  };
  Reflect.set(process, "emitWarning", filtered);
}

/** kafkajs codecs by `--kafkaCompression` value (snappy, lz4, zstd: kafka_codecs.ts). */
const CODECS: Record<KafkaCompression, CompressionTypes> = {
  "": CompressionTypes.None,
  auto: CompressionTypes.None,
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  zstd: CompressionTypes.ZSTD,
  lz4: CompressionTypes.LZ4,
  snappy: CompressionTypes.Snappy,
};

/** Produces flushes to a Kafka broker. */
export class KafkaDest implements Destination {
  /** Always "kafka". */
  readonly scheme = "kafka";
  private constructor(
    private readonly producer: Producer,
    private readonly compression: CompressionTypes,
    private readonly timeoutMs: number,
    private readonly opts: DestOptions,
  ) {}

  /** Connects the producer (failing at startup if the broker does not answer). */
  static async open(addr: string, opts: DestOptions): Promise<KafkaDest> {
    const name = opts.kafkaCompression ?? "";
    const codec = (CODECS as Record<string, CompressionTypes | undefined>)[name];
    if (codec === undefined) {
      throw new RangeError(
        `Unknown Kafka compression: "${name}": use ${
          Object.keys(CODECS).filter((c) => c).join(", ")
        }`,
      );
    }
    await registerCodec(codec);
    if (opts.kafkaSchemaUrl && opts.xtcpProtoFile) {
      // Informational, as in the original: logged and counted, never fatal.
      await registerSchema({
        url: opts.kafkaSchemaUrl,
        protoFile: opts.xtcpProtoFile,
        topic: opts.topic,
        counters: opts.counters,
        log: opts.log,
      });
    }
    const timeoutMs = sendTimeoutMs(opts);
    quietKafkajsTimers();
    const kafka = new Kafka({
      clientId: "xtcp2",
      brokers: [addr],
      connectionTimeout: 2000,
      requestTimeout: timeoutMs,
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2000 },
      logLevel: logLevel.NOTHING,
    });
    const producer = kafka.producer({ allowAutoTopicCreation: true, idempotent: false });
    try {
      await withTimeout(producer.connect(), 5000, `kafka connect to ${addr}`);
    } catch (err) {
      await producer.disconnect().catch(() => {}); // the connect's error is the one to report
      throw new Error(`kafka ${addr}: ${errorMessage(err)}`, { cause: err });
    }
    return new KafkaDest(producer, codec, timeoutMs, opts);
  }

  /** Produces one flush as one record; resolves with the broker's acknowledgement. */
  async send(bytes: Uint8Array): Promise<void> {
    try {
      await withTimeout(
        this.producer.send({
          topic: this.opts.topic,
          acks: -1,
          timeout: this.timeoutMs,
          compression: this.compression,
          // A copy: after a timeout the client may go on retrying this send by itself while a
          // later send of the same bytes succeeds, after which they may be reused.
          messages: [{ value: Buffer.from(bytes) }],
        }),
        this.timeoutMs,
        "kafka produce",
      );
      this.opts.counters.inc("destKafka", "Produce");
    } catch (err) {
      this.opts.counters.inc("destKafka", "Produce", "error");
      // The broker's own answer that this record cannot be taken (too large, not allowed).
      const e = err as { name?: string; retriable?: boolean };
      if (e.name === "KafkaJSProtocolError" && e.retriable === false) {
        throw new RefusedError(`Kafka broker refused the record: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Disconnects the producer (5 s at most). */
  async [Symbol.asyncDispose](): Promise<void> {
    await withTimeout(this.producer.disconnect(), 5000, "kafka disconnect").catch((err) =>
      this.opts.log.error(`kafka: ${errorMessage(err)}`)
    );
  }
}
