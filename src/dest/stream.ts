/**
 * One outgoing stream connection (unix or TCP) shared by the stream destinations: connected on
 * demand, every write under a deadline, dropped after a failure and reopened by the next write.
 *
 * A receiver that closes its end between writes is noticed at once: a read runs on the
 * connection for its whole life (the receiver sends nothing; end of stream means it closed), and
 * the next write goes on a new connection instead of into one whose peer is gone. Without that,
 * the first write after a TCP peer's close is taken by the local kernel and lost.
 *
 * @module
 */
import { closeIfOpen } from "../util/close.ts";
import type { Counters } from "../util/log.ts";
import { errorMessage } from "../util/errors.ts";
import { TimeoutError, withTimeout } from "../util/timeout.ts";
import { encodeVarint } from "../util/varint.ts";
import { writeAll } from "../util/write_all.ts";

/** What a {@link StreamConnection} needs. */
export interface StreamOptions {
  /** Opens a new connection. */
  dial: () => Promise<Deno.Conn>;
  /** The peer, for messages (a path, HOST:PORT). */
  peer: string;
  /** Counter function name (`connect`, `Writes`, `WriteBytes`, `peerClosed`). */
  fn: string;
  /** Deadline of one connect and of one write, in ms. */
  timeoutMs: number;
  counters: Counters;
}

/**
 * `bytes` as one frame, uvarint(length) ‖ bytes, in two parts for
 * {@link StreamConnection.write}: the bytes are written as they are, never copied.
 *
 * @example
 * ```ts
 * frame(new Uint8Array([7, 8])); // [Uint8Array [2], Uint8Array [7, 8]]
 * ```
 */
export function frame(bytes: Uint8Array): Uint8Array[] {
  return [encodeVarint(bytes.length), bytes];
}

/** A stream connection that reconnects on the next write after a failure or the peer's close. */
export class StreamConnection implements Disposable {
  private conn: Deno.Conn | undefined;
  /** Set by the connection's reader when the peer closed its end. */
  private peerGone = false;

  /** @param o how to dial, the deadline, the counters */
  constructor(private readonly o: StreamOptions) {}

  /** Connects now unless connected (a failure throws, and the next call tries again). */
  async connect(): Promise<Deno.Conn> {
    if (this.conn && this.peerGone) {
      this.o.counters.inc(this.o.fn, "peerClosed");
      this.drop();
    }
    if (this.conn) return this.conn;
    let conn: Deno.Conn;
    try {
      conn = await withTimeout(this.o.dial(), this.o.timeoutMs, `connect to ${this.o.peer}`);
    } catch (err) {
      if (err instanceof TimeoutError) throw err;
      throw new Error(`Connect to ${this.o.peer}: ${errorMessage(err)}`, { cause: err });
    }
    this.conn = conn;
    this.peerGone = false;
    this.watch(conn);
    this.o.counters.inc(this.o.fn, "connect");
    return conn;
  }

  /** Reads until the peer closes (what it sends is ignored), then marks the connection gone. */
  private watch(conn: Deno.Conn): void {
    const buf = new Uint8Array(4096);
    (async () => {
      while ((await conn.read(buf)) !== null) { /* nothing is expected from the receiver */ }
    })().catch(() => {/* reset, or closed here */}).finally(() => {
      if (this.conn === conn) this.peerGone = true;
    });
  }

  /**
   * Writes all of every part, in turn, within the deadline; resolves once the kernel took them.
   * A failure drops the connection (a frame may be half-written: the stream cannot go on) and
   * throws.
   */
  async write(...parts: Uint8Array[]): Promise<void> {
    const conn = await this.connect();
    try {
      let n = 0;
      for (const p of parts) {
        await withTimeout(writeAll(conn, p), this.o.timeoutMs, `write to ${this.o.peer}`);
        n += p.length;
      }
      this.o.counters.inc(this.o.fn, "Writes");
      this.o.counters.inc(this.o.fn, "WriteBytes", "count", n);
    } catch (err) {
      this.o.counters.inc(this.o.fn, "Writes", "error");
      this.drop();
      if (err instanceof TimeoutError) throw err;
      throw new Error(`Write to ${this.o.peer}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** Closes the connection (the next write reconnects). */
  drop(): void {
    closeIfOpen(this.conn);
    this.conn = undefined;
    this.peerGone = false;
  }

  /** Closes the connection. */
  [Symbol.dispose](): void {
    this.drop();
  }
}
