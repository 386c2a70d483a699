/**
 * `nsq:HOST:PORT`: each flush is published (PUB) on topic `--topic` of an nsqd, over its TCP
 * protocol, written here (nothing to install): the `"  V2"` magic, `PUB <topic>\n` + u32 size +
 * body, answered by a frame (u32 size, u32 type: 0 response, 1 error, 2 message) whose response
 * must be `OK`; `_heartbeat_` responses are answered with `NOP\n`. Bodies above nsqd's 1 MiB
 * message limit are split at rows (protobufList) or lines.
 *
 * Like the other brokers: no nsqd at startup is an error; a later failure closes the connection,
 * the send fails (the caller retries) and the next send reconnects.
 *
 * @module
 */
import { splitHostPort } from "../util/address.ts";
import { errorMessage, RefusedError } from "../util/errors.ts";
import { closeIfOpen } from "../util/close.ts";
import { withTimeout } from "../util/timeout.ts";
import { writeAll } from "../util/write_all.ts";
import { type Destination, type DestOptions, type Framing, sendTimeoutMs } from "./destination.ts";
import { splitFlush } from "./split.ts";

const MAGIC = new TextEncoder().encode("  V2");
const NOP = new TextEncoder().encode("NOP\n");
/** nsqd's default --max-msg-size. */
export const NSQ_MAX_MESSAGE = 1024 * 1024;
const FRAME_RESPONSE = 0;
const FRAME_ERROR = 1;

/** Valid NSQ topic names. */
export const NSQ_TOPIC = /^[.a-zA-Z0-9_-]{1,64}(#ephemeral)?$/;

/** nsqd answered with an error frame: E_BAD_* for good (refused), others (E_PUB_FAILED) not. */
function nsqError(frame: string): Error {
  const message = `Nsqd refused the command: ${frame}`;
  return frame.startsWith("E_BAD_") ? new RefusedError(message) : new Error(message);
}

/** Publishes flushes to an nsqd. */
export class NsqDest implements Destination {
  /** Always "nsq". */
  readonly scheme = "nsq";
  private conn: Deno.TcpConn | undefined;
  private pending = new Uint8Array(0);

  private constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly opts: DestOptions,
  ) {}

  /** Connects (failing at startup if nsqd does not answer). */
  static async open(addr: string, opts: DestOptions): Promise<NsqDest> {
    if (!NSQ_TOPIC.test(opts.topic)) {
      throw new RangeError(`Invalid NSQ topic: "${opts.topic}": use 1 to 64 of [.a-zA-Z0-9_-]`);
    }
    const { host, port } = splitHostPort(addr);
    const d = new NsqDest(host, port, opts);
    try {
      await d.connect();
    } catch (err) {
      throw new Error(`nsq ${addr}: ${errorMessage(err)}`, { cause: err });
    }
    return d;
  }

  private async connect(): Promise<Deno.TcpConn> {
    if (this.conn) return this.conn;
    const conn = await withTimeout(
      Deno.connect({ hostname: this.host, port: this.port }),
      sendTimeoutMs(this.opts),
      `nsq connect to ${this.host}:${this.port}`,
    );
    try {
      await writeAll(conn, MAGIC);
    } catch (err) {
      conn.close();
      throw err;
    }
    this.conn = conn;
    this.pending = new Uint8Array(0);
    this.opts.counters.inc("destNSQ", "connect");
    return conn;
  }

  private drop(): void {
    closeIfOpen(this.conn);
    this.conn = undefined;
  }

  /** Reads exactly `n` bytes (keeping what follows for the next read). */
  private async readExactly(conn: Deno.TcpConn, n: number): Promise<Uint8Array> {
    while (this.pending.length < n) {
      const buf = new Uint8Array(64 * 1024);
      const got = await conn.read(buf);
      if (got === null) throw new Deno.errors.ConnectionReset("Nsqd closed the connection");
      const next = new Uint8Array(this.pending.length + got);
      next.set(this.pending);
      next.set(buf.subarray(0, got), this.pending.length);
      this.pending = next;
    }
    const out = this.pending.slice(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }

  /** Waits for the answer to a command, answering heartbeats on the way. */
  private async answer(conn: Deno.TcpConn): Promise<void> {
    for (;;) {
      const head = new DataView((await this.readExactly(conn, 8)).buffer);
      const size = head.getUint32(0);
      const type = head.getUint32(4);
      if (size < 4 || size > 64 * 1024 * 1024) throw new Error(`Bad nsqd frame size: ${size}`);
      const data = new TextDecoder().decode(await this.readExactly(conn, size - 4));
      if (type === FRAME_RESPONSE && data === "_heartbeat_") {
        await writeAll(conn, NOP);
        continue;
      }
      if (type === FRAME_RESPONSE && data === "OK") return;
      if (type === FRAME_ERROR) throw nsqError(data);
      throw new Error(`Unexpected nsqd frame: type ${type}: ${data.slice(0, 80)}`);
    }
  }

  /** PUBlishes one flush (split at nsqd's message limit); resolves on each piece's `OK`. */
  async send(bytes: Uint8Array, framing: Framing): Promise<void> {
    const { pieces, dropped } = splitFlush(bytes, NSQ_MAX_MESSAGE, this.opts.marshal, framing);
    if (dropped) this.opts.counters.inc("destNSQ", "tooLarge", "error", dropped);
    try {
      const conn = await this.connect();
      const head = new TextEncoder().encode(`PUB ${this.opts.topic}\n`);
      for (const p of pieces) {
        const frame = new Uint8Array(head.length + 4 + p.length);
        frame.set(head);
        new DataView(frame.buffer).setUint32(head.length, p.length);
        frame.set(p, head.length + 4);
        await withTimeout(writeAll(conn, frame), sendTimeoutMs(this.opts), "nsq PUB");
        await withTimeout(this.answer(conn), sendTimeoutMs(this.opts), "nsq PUB answer");
        this.opts.counters.inc("destNSQ", "Publish");
      }
    } catch (err) {
      this.drop(); // the stream's state is unknown: reconnect on the next send
      this.opts.counters.inc("destNSQ", "Publish", "error");
      throw err;
    }
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.drop();
    return Promise.resolve();
  }
}
