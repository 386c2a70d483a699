/**
 * `unix:PATH`: a stream socket; each flush is uvarint(len) ‖ bytes. A write that the receiver
 * does not take within the send timeout fails (the connection is dropped and the flush comes
 * back to the caller to retry); the next send reconnects, as it does after the receiver closed.
 *
 * @module
 */
import { type Destination, type DestOptions, sendTimeoutMs } from "./destination.ts";
import { frame, StreamConnection } from "./stream.ts";

/** Sends flushes over a unix stream socket. */
export class UnixDest implements Destination {
  /** Always "unix". */
  readonly scheme = "unix";
  /** Socket writes take views of shared memory. */
  readonly sharedViews = true;
  private readonly stream: StreamConnection;

  private constructor(path: string, opts: DestOptions) {
    this.stream = new StreamConnection({
      dial: () => Deno.connect({ transport: "unix", path }),
      peer: path,
      fn: "unix",
      timeoutMs: sendTimeoutMs(opts),
      counters: opts.counters,
    });
  }

  /** Connects (failing at startup when nobody listens, as the original does). */
  static async open(path: string, opts: DestOptions): Promise<UnixDest> {
    const d = new UnixDest(path, opts);
    await d.stream.connect();
    return d;
  }

  /** Writes one frame; resolves once the kernel took all of it. */
  send(bytes: Uint8Array): Promise<void> {
    return this.stream.write(...frame(bytes));
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.stream.drop();
    return Promise.resolve();
  }
}
