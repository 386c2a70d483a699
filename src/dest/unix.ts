/**
 * `unix:PATH`: a stream socket; each flush is uvarint(len) ‖ bytes. A write that the receiver
 * does not take within the send timeout fails (the connection is dropped and the flush comes
 * back to the caller to retry); the next send reconnects.
 *
 * @module
 */
import { closeIfOpen } from "../util/close.ts";
import { withTimeout } from "../util/timeout.ts";
import { encodeVarint } from "../util/varint.ts";
import { writeAll } from "../util/write_all.ts";
import { type Destination, type DestOptions, sendTimeoutMs } from "./destination.ts";

/** Sends flushes over a unix stream socket. */
export class UnixDest implements Destination {
  /** Always "unix". */
  readonly scheme = "unix";
  private conn: Deno.UnixConn | undefined;

  private constructor(private readonly path: string, private readonly opts: DestOptions) {}

  /** Connects (failing at startup when nobody listens, as the original does). */
  static async open(path: string, opts: DestOptions): Promise<UnixDest> {
    const d = new UnixDest(path, opts);
    await d.connect();
    return d;
  }

  private async connect(): Promise<Deno.UnixConn> {
    if (!this.conn) {
      this.conn = await withTimeout(
        Deno.connect({ transport: "unix", path: this.path }),
        sendTimeoutMs(this.opts),
        `connect to ${this.path}`,
      );
      this.opts.counters.inc("unix", "connect");
    }
    return this.conn;
  }

  private drop(): void {
    closeIfOpen(this.conn);
    this.conn = undefined;
  }

  /** Writes one frame; resolves once the kernel took all of it. */
  async send(bytes: Uint8Array): Promise<void> {
    const head = encodeVarint(bytes.length);
    const frame = new Uint8Array(head.length + bytes.length);
    frame.set(head);
    frame.set(bytes, head.length);
    const conn = await this.connect();
    try {
      await withTimeout(writeAll(conn, frame), sendTimeoutMs(this.opts), `write to ${this.path}`);
      this.opts.counters.inc("unix", "Writes");
      this.opts.counters.inc("unix", "WriteBytes", "count", frame.length);
    } catch (err) {
      this.opts.counters.inc("unix", "Writes", "error");
      this.drop(); // a half-written frame: the stream cannot go on; reconnect on the next send
      throw err;
    }
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.drop();
    return Promise.resolve();
  }
}
