/**
 * `nats:HOST:PORT`: each flush published on subject `--topic`, acknowledged by a flush round
 * trip to the server. Fails at startup without a server; afterwards the client reconnects for as
 * long as the daemon runs, and sends made while it is away fail at once (the caller retries).
 * Messages above the server's max_payload are split at rows (protobufList) or lines.
 *
 * @module
 */
import { connect as natsConnect, type NatsConnection } from "nats";
import { errorMessage } from "../util/errors.ts";
import { withTimeout } from "../util/timeout.ts";
import { type Destination, type DestOptions, type Framing, sendTimeoutMs } from "./destination.ts";
import { splitFlush } from "./split.ts";

/** The client is between a disconnect and its reconnect. Retriable. */
export class DisconnectedError extends Error {
  /** Always true. */
  readonly retriable = true;
  /** @param what the peer */
  constructor(what: string) {
    super(`Disconnected from the server: ${what}: reconnecting`);
    this.name = "DisconnectedError";
  }
}

/** Publishes flushes to a NATS server. */
export class NatsDest implements Destination {
  /** Always "nats". */
  readonly scheme = "nats";
  /** False between a disconnect and the reconnect: sends then fail at once. */
  private connected = true;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly addr: string,
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
      throw new Error(`nats ${addr}: ${errorMessage(err)}`, { cause: err });
    }
    const dest = new NatsDest(nc, addr, opts);
    (async () => {
      for await (const s of nc.status()) {
        opts.counters.inc("destNATS", String(s.type));
        if (s.type === "disconnect" || s.type === "reconnect") {
          dest.connected = s.type === "reconnect";
          opts.log.info(`nats ${addr}: ${s.type}`);
        }
      }
    })().catch((err) => opts.log.error(`nats ${addr}: ${errorMessage(err)}`));
    return dest;
  }

  /** Publishes one flush (split to max_payload) and waits for the server's flush answer. */
  async send(bytes: Uint8Array, framing: Framing): Promise<void> {
    // While disconnected, fail at once: nothing piles up in the client's own buffer.
    if (!this.connected) throw new DisconnectedError(`nats ${this.addr}`);
    const max = this.nc.info?.max_payload ?? 1024 * 1024;
    const { pieces, dropped } = splitFlush(bytes, max, this.opts.marshal, framing);
    if (dropped) this.opts.counters.inc("destNATS", "tooLarge", "error", dropped);
    for (const p of pieces) {
      // No copy: the client packs its outbound buffer into a new array before the socket write,
      // and the flush answer below comes after it.
      this.nc.publish(this.opts.topic, p);
      this.opts.counters.inc("destNATS", "Publish");
    }
    await withTimeout(this.nc.flush(), sendTimeoutMs(this.opts), `nats flush to ${this.addr}`);
  }

  /** Drains the connection (5 s at most), else closes it. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await withTimeout(this.nc.drain(), 5000, `nats drain of ${this.addr}`);
    } catch (err) {
      this.opts.log.error(`nats: ${errorMessage(err)}`);
      await this.nc.close();
    }
  }
}
