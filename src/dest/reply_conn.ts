/**
 * One connection to a request/reply server (NATS, Valkey/Redis), written for the delivery path:
 * the caller writes its command straight from the delivery queue's bytes (no copy, no object per
 * row, no client-side buffer of its own) and waits for the server's reply.
 *
 * A reader runs for the connection's whole life: it cuts the bytes the server sends into replies
 * with the protocol's `parse`, gives those the protocol handles itself to `unsolicited` (a NATS
 * server's `PING`, answered at once even while the daemon is idle), and hands the others, in
 * order, to the waiting {@link ReplyConnection.reply} calls. The server's close, a read error, a
 * deadline missed, a reply the protocol cannot parse: the connection is dropped, every waiter
 * fails, and the next command dials a new one (the delivery queue spaces the attempts).
 *
 * @module
 */
import { closeIfOpen } from "../util/close.ts";
import { errorMessage } from "../util/errors.ts";
import type { Counters } from "../util/log.ts";
import { TimeoutError, withTimeout } from "../util/timeout.ts";
import { writeAll } from "../util/write_all.ts";

/** One reply cut from the bytes received, and how many bytes it took. */
export interface Parsed<R> {
  reply: R;
  used: number;
}

/** What a {@link ReplyConnection} needs. */
export interface ReplyOptions<R> {
  /** Opens a new connection. */
  dial: () => Promise<Deno.Conn>;
  /** The peer and protocol, for messages (`nats 127.0.0.1:4222`). */
  peer: string;
  /** Counter function name (`connect`, `disconnect`, `Writes`, `WriteBytes`). */
  fn: string;
  /** Deadline of a connect, of one write and of one reply, in ms. */
  timeoutMs: number;
  counters: Counters;
  /**
   * The first reply in `buf[start, end)`, or undefined while it is incomplete; throws on bytes
   * that are no reply of the protocol.
   */
  parse: (buf: Uint8Array, start: number, end: number) => Parsed<R> | undefined;
  /** Takes a reply that answers no command (true: handled; it is not handed to a waiter). */
  unsolicited?: (reply: R, conn: ReplyConnection<R>) => boolean;
  /** Runs on every new connection before the first command (a handshake). */
  handshake?: (conn: ReplyConnection<R>) => Promise<void>;
}

/** The reader's buffer: replies are small (the largest, NATS's INFO, is under 4 KiB). */
const READ_BUFFER = 64 * 1024;

interface Waiter<R> {
  resolve: (r: R) => void;
  reject: (e: Error) => void;
}

/** A connection that hands the server's replies, in order, to the commands waiting for them. */
export class ReplyConnection<R> implements Disposable {
  private conn: Deno.Conn | undefined;
  private opening: Promise<void> | undefined;
  private readonly waiters: Waiter<R>[] = [];
  /** Replies that came before anyone waited for them. */
  private readonly early: R[] = [];
  /** Why the connection went, for the waiters that come after. */
  private gone: Error | undefined;
  /** The last write: writes go out one after the other, never interleaved. */
  private writing: Promise<void> = Promise.resolve();

  /** @param o how to dial, parse and handshake */
  constructor(private readonly o: ReplyOptions<R>) {}

  /** Connected and not gone. */
  get connected(): boolean {
    return this.conn !== undefined && this.gone === undefined;
  }

  /** Connects (and runs the handshake) unless connected; a failure throws. */
  connect(): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.conn) this.drop();
    this.opening ??= this.open().finally(() => this.opening = undefined);
    return this.opening;
  }

  private async open(): Promise<void> {
    let conn: Deno.Conn;
    try {
      conn = await withTimeout(this.o.dial(), this.o.timeoutMs, `connect to ${this.o.peer}`);
    } catch (err) {
      this.o.counters.inc(this.o.fn, "connect", "error");
      if (err instanceof TimeoutError) throw err;
      throw new Error(`Connect to ${this.o.peer}: ${errorMessage(err)}`, { cause: err });
    }
    this.conn = conn;
    this.gone = undefined;
    this.early.length = 0;
    this.read(conn);
    try {
      await this.o.handshake?.(this);
    } catch (err) {
      this.drop();
      this.o.counters.inc(this.o.fn, "connect", "error");
      throw err;
    }
    this.o.counters.inc(this.o.fn, "connect");
  }

  /** Reads replies until the connection ends, then fails every waiter. */
  private read(conn: Deno.Conn): void {
    const buf = new Uint8Array(READ_BUFFER);
    let start = 0;
    let end = 0;
    (async () => {
      for (;;) {
        if (start === end) start = end = 0;
        else if (end === buf.length) {
          if (start === 0) throw new Error(`a reply longer than ${READ_BUFFER} bytes`);
          buf.copyWithin(0, start, end);
          end -= start;
          start = 0;
        }
        const got = await conn.read(buf.subarray(end));
        if (got === null) throw new Deno.errors.ConnectionReset("the server closed the connection");
        end += got;
        for (;;) {
          const p = this.o.parse(buf, start, end);
          if (!p) break;
          start += p.used;
          if (this.conn === conn) this.take(p.reply);
        }
      }
    })().catch((err) => {
      if (this.conn !== conn) return; // dropped here first
      this.o.counters.inc(this.o.fn, "disconnect");
      this.fail(new Error(`${this.o.peer}: ${errorMessage(err)}`, { cause: err }));
    });
  }

  private take(reply: R): void {
    if (this.o.unsolicited?.(reply, this)) return;
    const w = this.waiters.shift();
    if (w) w.resolve(reply);
    else this.early.push(reply);
  }

  /** Marks the connection gone and fails every waiter with `err`. */
  private fail(err: Error): void {
    this.gone ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /**
   * Writes every part in turn (views are written as they are: no copy) within the deadline,
   * after any write still under way (a reply to the server's PING never lands inside a
   * command); a failure drops the connection and throws.
   */
  write(...parts: Uint8Array[]): Promise<void> {
    const run = this.writing.then(() => this.writeNow(parts));
    this.writing = run.catch(() => {/* the caller of that write saw it */});
    return run;
  }

  private async writeNow(parts: Uint8Array[]): Promise<void> {
    const conn = this.conn;
    if (!conn || this.gone) throw this.gone ?? new Error(`${this.o.peer}: not connected`);
    let n = 0;
    try {
      for (const p of parts) {
        await withTimeout(writeAll(conn, p), this.o.timeoutMs, `write to ${this.o.peer}`);
        n += p.length;
      }
    } catch (err) {
      this.o.counters.inc(this.o.fn, "Writes", "error");
      this.drop();
      if (err instanceof TimeoutError) throw err;
      throw new Error(`Write to ${this.o.peer}: ${errorMessage(err)}`, { cause: err });
    }
    this.o.counters.inc(this.o.fn, "Writes");
    this.o.counters.inc(this.o.fn, "WriteBytes", "count", n);
  }

  /** The next reply that answers a command, within the deadline (missed: the connection drops). */
  async reply(): Promise<R> {
    const early = this.early.shift();
    if (early !== undefined) return early;
    if (!this.conn || this.gone) throw this.gone ?? new Error(`${this.o.peer}: not connected`);
    const waiting = new Promise<R>((resolve, reject) => this.waiters.push({ resolve, reject }));
    try {
      return await withTimeout(waiting, this.o.timeoutMs, `reply from ${this.o.peer}`);
    } catch (err) {
      // A late reply would answer the next command: this connection cannot go on.
      if (err instanceof TimeoutError) this.drop();
      throw err;
    }
  }

  /** Closes the connection (the next {@link ReplyConnection.connect} dials again). */
  drop(): void {
    const conn = this.conn;
    this.conn = undefined;
    this.fail(new Error(`${this.o.peer}: connection closed`));
    this.gone = undefined;
    this.early.length = 0;
    closeIfOpen(conn);
  }

  /** Closes the connection. */
  [Symbol.dispose](): void {
    this.drop();
  }
}

/** Index of "\r\n" at or after `from` in `buf[.., end)`, or -1. */
export function findCrlf(buf: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 1 < end; i++) if (buf[i] === 13 && buf[i + 1] === 10) return i;
  return -1;
}

/** `buf[start, end)` as ASCII text (protocol lines). */
export function ascii(buf: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...buf.subarray(start, end));
}
