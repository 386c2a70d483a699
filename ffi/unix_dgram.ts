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

/** A unix datagram socket aimed at one path. */
export class UnixDgramSocket implements Disposable {
  private fd: number;
  private readonly addr: Uint8Array;
  private readonly buf = new Uint8Array(new ArrayBuffer(AF_UNIX_DGRAM.maxPayload));

  private constructor(fd: number, private readonly path: string) {
    this.fd = fd;
    const p = new TextEncoder().encode(path);
    if (p.length > 107) throw new RangeError(`Unix socket path too long (max 107 bytes): ${path}`);
    this.addr = new Uint8Array(new ArrayBuffer(2 + 108)); // struct sockaddr_un
    this.addr[0] = AF_UNIX;
    this.addr.set(p, 2);
  }

  /** A socket that sends to `path` (which must exist when sending). */
  static connect(path: string): UnixDgramSocket {
    const s = new UnixDgramSocket(sysSocket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), path);
    return s;
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
