/**
 * An AF_UNIX datagram socket through libc (Deno's own unixpacket API is unstable).
 *
 * @module
 */
import { OwnedFd } from "./owned_fd.ts";
import { AF_UNIX, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, sysSendto, sysSocket } from "./libc.ts";

/** Limits of unix datagrams. */
export const AF_UNIX_DGRAM = {
  /** Payload kept under the default socket send buffer. */
  maxPayload: 65000,
} as const;

/**
 * struct sockaddr_un for `path` (to bind or send to); throws RangeError when the path does not
 * fit sun_path (107 bytes and a NUL).
 *
 * @example
 * ```ts
 * sysBind(fd, sockaddrUn("/run/xtcp2.sock"));
 * ```
 */
export function sockaddrUn(path: string): Uint8Array {
  const p = new TextEncoder().encode(path);
  if (p.length > 107) {
    throw new RangeError(`Unix socket path too long (max 107 bytes): ${p.length} bytes: ${path}`);
  }
  const addr = new Uint8Array(new ArrayBuffer(2 + 108)); // { sa_family_t sun_family; char sun_path[108]; }
  addr[0] = AF_UNIX;
  addr.set(p, 2);
  return addr;
}

/** A unix datagram socket aimed at one path. */
export class UnixDgramSocket extends OwnedFd {
  private readonly buf = new Uint8Array(new ArrayBuffer(AF_UNIX_DGRAM.maxPayload));

  private constructor(
    fd: number,
    private readonly path: string,
    private readonly addr: Uint8Array,
  ) {
    super(fd);
  }

  /** @internal */
  protected closedError(): Error {
    return new Error("Unix datagram socket is closed");
  }

  /**
   * A socket that sends to `path` (which must exist when sending). A path that does not fit
   * sockaddr_un throws RangeError before any socket is created.
   */
  static connect(path: string): UnixDgramSocket {
    const addr = sockaddrUn(path);
    return new UnixDgramSocket(sysSocket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), path, addr);
  }

  /**
   * Sends one datagram without ever blocking (MSG_DONTWAIT). Returns true once sent, and false
   * when the receiver's queue is full (EAGAIN/EWOULDBLOCK): the datagram is dropped, and a
   * boolean lets the destination count the drop without an exception per datagram. Throws
   * RangeError for more than {@link AF_UNIX_DGRAM}.maxPayload bytes, and OsError for any other
   * failure (ENOENT: nothing at the path, ECONNREFUSED: no socket bound there any more,
   * EMSGSIZE: larger than the socket's send buffer).
   *
   * @example
   * ```ts
   * using sock = UnixDgramSocket.connect("/run/xtcp2.sock");
   * if (!sock.send(bytes)) drops++;
   * ```
   */
  send(b: Uint8Array): boolean {
    if (b.length > this.buf.length) {
      throw new RangeError(
        `Unix datagram too large (max ${this.buf.length} bytes): ${b.length} bytes: ${this.path}`,
      );
    }
    this.buf.set(b);
    const n = sysSendto(
      this.fd,
      this.buf.subarray(0, b.length),
      this.addr,
      this.path,
      MSG_DONTWAIT,
    );
    return n >= 0;
  }
}
