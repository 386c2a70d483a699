/**
 * An AF_UNIX datagram socket through libc (Deno's own unixpacket API is unstable).
 *
 * @module
 */
import { sysClose, sysSendto, sysSocket } from "./libc.ts";

/** Limits of unix datagrams. */
export const AF_UNIX_DGRAM = {
  /** Payload kept under the default socket send buffer. */
  maxPayload: 65000,
} as const;

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0x80000;

/** struct sockaddr_un for `path`; throws RangeError when it does not fit sun_path. */
function sockaddrUn(path: string): Uint8Array {
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
export class UnixDgramSocket implements Disposable {
  private fd: number;
  private readonly buf = new Uint8Array(new ArrayBuffer(AF_UNIX_DGRAM.maxPayload));

  private constructor(
    fd: number,
    private readonly path: string,
    private readonly addr: Uint8Array,
  ) {
    this.fd = fd;
  }

  /**
   * A socket that sends to `path` (which must exist when sending). A path that does not fit
   * sockaddr_un throws RangeError before any socket is created.
   */
  static connect(path: string): UnixDgramSocket {
    const addr = sockaddrUn(path);
    return new UnixDgramSocket(sysSocket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), path, addr);
  }

  /** Sends one datagram. */
  send(b: Uint8Array): void {
    if (this.fd < 0) throw new Error("Unix datagram socket is closed");
    this.buf.set(b);
    sysSendto(this.fd, this.buf.subarray(0, b.length), this.addr, this.path);
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    sysClose(fd);
  }

  /** Same as {@link UnixDgramSocket.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
