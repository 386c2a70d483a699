/**
 * `valkey:HOST:PORT` (also `redis:`): each flush PUBLISHed on channel `--topic`, acknowledged by
 * the server's reply. PUBLISH reaches only the subscribers connected at that moment (pub/sub by
 * design); `valkey-stream:HOST:PORT` (also `redis-stream:`) is the durable mode: each flush is an
 * entry (field `data`) of the stream `--topic`, `XADD … MAXLEN ~ --valkeyStreamMaxLen`, so a
 * consumer that was away reads what it missed with XREAD/XREADGROUP. Fails at startup without a server; afterwards the client reconnects with
 * backoff for as long as the daemon runs, and commands made while it is away fail at once (no
 * unbounded offline queue; the caller retries).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import { splitHostPort } from "../util/address.ts";
import { Backoff } from "../util/backoff.ts";
import { errorMessage } from "../util/errors.ts";
import { withTimeout } from "../util/timeout.ts";
import { type Destination, type DestOptions, sendTimeoutMs } from "./destination.ts";

/** Publishes flushes to a Valkey or Redis server. */
export class ValkeyDest implements Destination {
  private constructor(
    readonly scheme: string,
    private readonly client: Redis,
    private readonly opts: DestOptions,
  ) {}

  /** Connects and PINGs (failing at startup if the server does not answer within 2 s). */
  static async open(scheme: string, addr: string, opts: DestOptions): Promise<ValkeyDest> {
    const { host, port } = splitHostPort(addr);
    const backoff = new Backoff({ initialMs: 200, maxMs: 2000 });
    const client = new Redis({
      host,
      port,
      lazyConnect: true,
      connectTimeout: 2000,
      // Fail a command at once while disconnected rather than queue it without bound.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => backoff.next(), // forever
    });
    // Without a listener an "error" event would end the process: count it, say it once per kind.
    let lastError = "";
    client.on("error", (err: Error) => {
      opts.counters.inc("destValKey", "connection", "error");
      if (err.message !== lastError) opts.log.error(`${scheme} ${addr}: ${err.message}`);
      lastError = err.message;
    });
    client.on("ready", () => {
      lastError = "";
      backoff.reset();
    });
    client.on("reconnecting", () => opts.counters.inc("destValKey", "reconnect"));
    try {
      await client.connect();
      await withTimeout(client.ping(), 2000, `${scheme} PING`);
    } catch (err) {
      client.disconnect();
      throw new Error(`${scheme} ${addr}: ${errorMessage(err)}`, { cause: err });
    }
    return new ValkeyDest(scheme, client, opts);
  }

  /** PUBLISHes (or XADDs) one flush; resolves with the server's reply. */
  async send(bytes: Uint8Array): Promise<void> {
    // A view, no copy: the client writes the command (its own copy) before the reply comes, and
    // resends an unanswered one after a reconnect before any later command is answered.
    const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const topic = this.opts.topic;
    const stream = this.scheme.endsWith("-stream");
    await withTimeout<unknown>(
      stream
        ? this.client.xadd(
          topic,
          "MAXLEN",
          "~",
          String(this.opts.streamMaxLen ?? 100),
          "*",
          "data",
          data,
        )
        : this.client.publish(topic, data),
      sendTimeoutMs(this.opts),
      `${this.scheme} ${stream ? "XADD" : "PUBLISH"}`,
    );
    this.opts.counters.inc("destValKey", stream ? "XAdd" : "Publish");
  }

  /** QUITs (2 s at most), else disconnects. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await withTimeout(this.client.quit(), 2000, `${this.scheme} QUIT`);
    } catch {
      this.client.disconnect();
    }
  }
}
