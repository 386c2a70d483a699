/**
 * Message-broker destinations: `kafka:HOST:PORT` (each flush one record of topic `--topic`),
 * `nats:HOST:PORT` (publish each flush on subject `--topic`) and `valkey:HOST:PORT` /
 * `redis:HOST:PORT` (PUBLISH each flush on channel `--topic`).
 *
 * Unlike the original (NATS gives up after 5 reconnects; Valkey errors are dropped silently),
 * all three fail at startup without their broker, reconnect for as long as the daemon runs after
 * that, count and log each flush that cannot be delivered with its row count, and never make a
 * flush wait long for a broker that went away (2 s; Kafka: the produce timeout): collection goes
 * on, and a later flush tries again.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { connect as natsConnect, type NatsConnection } from "nats";
import { Redis } from "ioredis";
import { CompressionTypes, Kafka, logLevel, type Producer } from "kafkajs";
import { type Destination, type DestOptions, splitHostPort } from "./destination.ts";
import { splitFlush } from "./split.ts";
import { withTimeout } from "./timeout.ts";

/** How long a flush may wait for the broker. */
const SEND_TIMEOUT_MS = 2000;

/** `nats:HOST:PORT`. */
export class NatsDest implements Destination {
  readonly scheme = "nats";
  /** False between a disconnect and the reconnect: flushes then fail at once. */
  private connected = true;
  private constructor(
    private readonly nc: NatsConnection,
    private readonly opts: DestOptions,
  ) {}

  /** Connects (failing at startup if the server does not answer within 2 s). */
  static async open(addr: string, opts: DestOptions): Promise<NatsDest> {
    let nc: NatsConnection;
    try {
      nc = await natsConnect({
        servers: addr,
        timeout: 2000,
        name: "xtcp2",
        reconnect: true,
        maxReconnectAttempts: -1, // for as long as the daemon runs
        reconnectTimeWait: 2000,
        reconnectJitter: 100,
      });
    } catch (err) {
      throw new Error(`nats ${addr}: ${(err as Error).message}`);
    }
    const dest = new NatsDest(nc, opts);
    (async () => {
      for await (const s of nc.status()) {
        opts.counters.inc("destNATS", String(s.type));
        if (s.type === "disconnect" || s.type === "reconnect") {
          dest.connected = s.type === "reconnect";
          opts.log.info(`nats ${addr}: ${s.type}`);
        }
      }
    })().catch((err) => opts.log.error(`nats ${addr}: ${(err as Error).message}`));
    return dest;
  }

  async send(bytes: Uint8Array, framing: "message" | "lines"): Promise<void> {
    // While disconnected, fail at once: neither the poll nor the flushes behind wait for a
    // server that is away, and nothing piles up in the client's buffer.
    if (!this.connected) throw new Error("disconnected from the server (reconnecting)");
    // A message may not exceed the server's max_payload (1 MiB by default): split at rows/lines.
    const max = this.nc.info?.max_payload ?? 1024 * 1024;
    const { pieces, dropped } = splitFlush(bytes, max, this.opts.marshal, framing);
    if (dropped) this.opts.counters.inc("destNATS", "tooLarge", "error", dropped);
    for (const p of pieces) {
      // publish() copies into the connection's buffer (kept while reconnecting); flush() is the
      // server's acknowledgement that it has everything so far.
      this.nc.publish(this.opts.topic, p.slice()); // a copy: `bytes` is reused after send
      this.opts.counters.inc("destNATS", "Publish");
    }
    await withTimeout(this.nc.flush(), SEND_TIMEOUT_MS, "nats flush");
  }

  async close(): Promise<void> {
    try {
      await withTimeout(this.nc.drain(), 5000, "nats drain");
    } catch (err) {
      this.opts.log.error(`nats: ${(err as Error).message}`);
      await this.nc.close();
    }
  }
}

/** `valkey:HOST:PORT` (also `redis:`). */
export class ValkeyDest implements Destination {
  readonly scheme: string;
  private constructor(
    scheme: string,
    private readonly client: Redis,
    private readonly opts: DestOptions,
  ) {
    this.scheme = scheme;
  }

  /** Connects and PINGs (failing at startup if the server does not answer within 2 s). */
  static async open(scheme: string, addr: string, opts: DestOptions): Promise<ValkeyDest> {
    const { host, port } = splitHostPort(addr);
    const client = new Redis({
      host,
      port,
      lazyConnect: true,
      connectTimeout: 2000,
      // Fail a command at once while disconnected rather than queue it without bound.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 2000, // reconnect every 2 s, forever
    });
    // Without a listener an "error" event would end the process: count it, say it once per kind.
    let lastError = "";
    client.on("error", (err: Error) => {
      opts.counters.inc("destValKey", "connection", "error");
      if (err.message !== lastError) opts.log.error(`${scheme} ${addr}: ${err.message}`);
      lastError = err.message;
    });
    client.on("ready", () => (lastError = ""));
    client.on("reconnecting", () => opts.counters.inc("destValKey", "reconnect"));
    try {
      await client.connect();
      await withTimeout(client.ping(), 2000, `${scheme} PING`);
    } catch (err) {
      client.disconnect();
      throw new Error(`${scheme} ${addr}: ${(err as Error).message}`);
    }
    return new ValkeyDest(scheme, client, opts);
  }

  async send(bytes: Uint8Array): Promise<void> {
    await withTimeout(
      // A copy: the client may still hold it after a timeout, when `bytes` is reused.
      this.client.publish(this.opts.topic, Buffer.from(bytes)),
      SEND_TIMEOUT_MS,
      `${this.scheme} PUBLISH`,
    );
    this.opts.counters.inc("destValKey", "Publish");
  }

  async close(): Promise<void> {
    try {
      await withTimeout(this.client.quit(), 2000, `${this.scheme} QUIT`);
    } catch {
      this.client.disconnect();
    }
  }
}

/**
 * kafkajs sets a timer from a date difference that comes out negative on Deno, and Node's timers
 * warn about it on stderr at every connection (the timer fires at once, as kafkajs expects).
 * That one warning is dropped; every other warning goes through.
 */
function quietKafkajsTimers(): void {
  const p = process as unknown as { emitWarning: (...args: unknown[]) => void; xtcp2Quiet?: true };
  if (p.xtcp2Quiet) return;
  p.xtcp2Quiet = true;
  const emit = p.emitWarning.bind(process);
  p.emitWarning = (...args: unknown[]) => {
    const type = typeof args[1] === "string"
      ? args[1]
      : (args[1] as { type?: string } | undefined)?.type ?? (args[0] as Error)?.name;
    if (type === "TimeoutNegativeWarning") return;
    emit(...args);
  };
}

/** Kafka codecs this build can produce with (kafkajs has GZIP built in; others need plugins). */
export const KAFKA_CODECS: Record<string, CompressionTypes | undefined> = {
  "": CompressionTypes.None,
  auto: CompressionTypes.None,
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  zstd: undefined,
  lz4: undefined,
  snappy: undefined,
};

/**
 * `kafka:HOST:PORT`: each flush is one record (no key) of topic `--topic`, acknowledged by all
 * in-sync replicas. After a failed produce, flushes fail at once for 2 s (a broker that went away
 * costs the polls nothing), then the next one tries again; the client reconnects by itself.
 */
export class KafkaDest implements Destination {
  readonly scheme = "kafka";
  private downUntil = 0;
  private constructor(
    private readonly producer: Producer,
    private readonly compression: CompressionTypes,
    private readonly timeoutMs: number,
    private readonly opts: DestOptions,
  ) {}

  /**
   * Connects the producer (failing at startup if the broker does not answer).
   *
   * @param compression `--kafkaCompression`
   * @param produceTimeoutMs `--produceTimeout` (0 = 5 s)
   */
  static async open(
    addr: string,
    compression: string,
    produceTimeoutMs: number,
    opts: DestOptions,
  ): Promise<KafkaDest> {
    const codec = KAFKA_CODECS[compression];
    if (codec === undefined) {
      throw new Error(
        `kafka compression "${compression}" is not available in this build: use gzip or none`,
      );
    }
    const timeoutMs = produceTimeoutMs || 5000;
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
      await withTimeout(producer.connect(), 5000, "kafka connect");
    } catch (err) {
      await producer.disconnect().catch(() => {});
      throw new Error(`kafka ${addr}: ${(err as Error).message}`);
    }
    return new KafkaDest(producer, codec, timeoutMs, opts);
  }

  async send(bytes: Uint8Array): Promise<void> {
    if (Date.now() < this.downUntil) {
      throw new Error("broker unreachable (trying again every 2 s)");
    }
    try {
      await withTimeout(
        this.producer.send({
          topic: this.opts.topic,
          acks: -1,
          timeout: this.timeoutMs,
          compression: this.compression,
          // A copy: the client may still hold it after a timeout, when `bytes` is reused.
          messages: [{ value: Buffer.from(bytes) }],
        }),
        this.timeoutMs,
        "kafka produce",
      );
      this.opts.counters.inc("destKafka", "Produce");
    } catch (err) {
      this.downUntil = Date.now() + 2000;
      this.opts.counters.inc("destKafka", "Produce", "error");
      throw err;
    }
  }

  async close(): Promise<void> {
    await withTimeout(this.producer.disconnect(), 5000, "kafka disconnect").catch((err) =>
      this.opts.log.error(`kafka: ${(err as Error).message}`)
    );
  }
}
