/**
 * `unixgram:PATH`: each flush as AF_UNIX datagrams. Sends never wait: a receiver whose queue is
 * full loses the datagram, counted as a drop (`unixgram/queueFull/drop`, in rows where the
 * datagram is a protobufList envelope), and the event loop goes on.
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
  /** Datagrams dropped because the receiver's queue was full. */
  dropped = 0;

  private constructor(private readonly sock: UnixDgramSocket, opts: DestOptions) {
    super(opts, AF_UNIX_DGRAM.maxPayload);
  }

  /** A socket aimed at `path`. */
  static open(path: string, opts: DestOptions): UnixgramDest {
    return new UnixgramDest(UnixDgramSocket.connect(path), opts);
  }

  /** Sends one datagram without waiting; a full receiver queue is a counted drop. */
  protected sendOne(b: Uint8Array): Promise<void> {
    try {
      if ((this.sock.send(b) as boolean | void) === false) {
        this.dropped++;
        this.opts.counters.inc("unixgram", "queueFull", "drop");
      }
      return Promise.resolve();
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
