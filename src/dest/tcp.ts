/**
 * `tcp:HOST:PORT`: one TCP connection. Line formats (jsonl, csv, tsv) are written as they are:
 * the stream is their lines. Every other format is one message per flush and is framed like
 * unix: uvarint(len) ‖ bytes (protobufList: uvarint(len) ‖ the varint-prefixed Envelope), so a
 * receiver can cut the stream back into flushes.
 *
 * Nothing listening at startup is an error. A write that does not complete within the send
 * timeout fails and drops the connection; so does any write error. The flush goes back to the
 * delivery queue, whose backoff spaces the attempts, and the next send reconnects; a receiver
 * that closed its end between flushes is noticed before the next write (see `stream.ts`).
 * A send is acknowledged when the local kernel took the bytes: TCP has no acknowledgement by the
 * receiving program, so a receiver that closes with a flush in flight loses it. What was half
 * written when a connection broke is resent whole on the next one: a receiver drops an
 * incomplete trailing frame or line at the end of a connection.
 *
 * @module
 */
import { splitHostPort } from "../util/address.ts";
import { errorMessage } from "../util/errors.ts";
import { type Destination, type DestOptions, type Framing, sendTimeoutMs } from "./destination.ts";
import { frame, StreamConnection } from "./stream.ts";

/** Sends flushes over one TCP connection. */
export class TcpDest implements Destination {
  /** Always "tcp". */
  readonly scheme = "tcp";
  /** Socket writes take views of shared memory. */
  readonly sharedViews = true;
  private readonly stream: StreamConnection;

  private constructor(addr: string, opts: DestOptions) {
    const { host, port } = splitHostPort(addr);
    this.stream = new StreamConnection({
      dial: async () => {
        const conn = await Deno.connect({ hostname: host, port });
        conn.setKeepAlive(true);
        return conn;
      },
      peer: addr,
      fn: "tcp",
      timeoutMs: sendTimeoutMs(opts),
      counters: opts.counters,
    });
  }

  /** Connects (failing at startup when nothing listens). */
  static async open(addr: string, opts: DestOptions): Promise<TcpDest> {
    const d = new TcpDest(addr, opts);
    try {
      await d.stream.connect();
    } catch (err) {
      throw new Error(`tcp: ${errorMessage(err)}`, { cause: err });
    }
    return d;
  }

  /** Writes one flush (lines as they are, a message framed); resolves once the kernel took it. */
  send(bytes: Uint8Array, framing: Framing): Promise<void> {
    return framing === "lines" ? this.stream.write(bytes) : this.stream.write(...frame(bytes));
  }

  /** Closes the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.stream.drop();
    return Promise.resolve();
  }
}
