/**
 * `unixgram:PATH`: each flush as AF_UNIX datagrams. Sends never wait: a receiver whose queue is
 * full loses the datagram, counted as a drop (`xtcp_counts{function="unixgram",
 * variable="queueFull",type="drop"}`), and the event loop goes on.
 *
 * @module
 */
import { AF_UNIX_DGRAM, UnixDgramSocket } from "../../ffi/unix_dgram.ts";
import { DatagramDest } from "./datagram.ts";
import type { DestOptions } from "./destination.ts";

/** Sends flushes as unix datagrams. */
export class UnixgramDest extends DatagramDest {
  /** Always "unixgram". */
  readonly scheme = "unixgram";
  private constructor(private readonly sock: UnixDgramSocket, opts: DestOptions) {
    super(opts, AF_UNIX_DGRAM.maxPayload);
  }

  /** A socket aimed at `path`. */
  static open(path: string, opts: DestOptions): UnixgramDest {
    return new UnixgramDest(UnixDgramSocket.connect(path), opts);
  }

  /** Sends one datagram without waiting; false when the receiver's queue was full. */
  protected sendOne(b: Uint8Array): Promise<boolean> {
    try {
      return Promise.resolve(this.sock.send(b));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Closes the socket. */
  [Symbol.asyncDispose](): Promise<void> {
    this.sock.close();
    return Promise.resolve();
  }
}
