/**
 * A netlink socket through libc: socket, bind, getsockname, SO_RCVTIMEO, sendmsg and recvmsg with
 * structures preallocated once per socket (nothing is allocated per receive).
 *
 * @module
 */
import { OwnedFd } from "./owned_fd.ts";
import {
  addressOf,
  AF_NETLINK,
  IOVEC_LEN,
  MSG_TRUNC,
  MSGHDR_LEN,
  NETLINK_SOCK_DIAG,
  SO_RCVBUF,
  SO_RCVTIMEO,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  sysBind,
  sysClose,
  sysGetsockname,
  sysRecvmsg,
  sysSendmsg,
  sysSetsockopt,
  sysSocket,
} from "./libc.ts";
import { releaseAfter } from "../src/util/errors.ts";

/** Options of {@link NetlinkSocket.open}. */
export interface NetlinkSocketOptions {
  /** Netlink protocol; default NETLINK_SOCK_DIAG (4). */
  protocol?: number;
  /** SO_RCVTIMEO in ms so a blocked receive wakes up; 0 = wait forever. Default 1000. */
  rcvTimeoutMs?: number;
  /** SO_RCVBUF in bytes; default: the kernel's. */
  rcvBufBytes?: number;
}

const SOCKADDR_NL_LEN = 12;
const SEND_BUF_LEN = 4096;

/** Off-heap bytes: their address never moves, so C structs may point at them. */
function pinned(n: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(n));
}

/**
 * A bound AF_NETLINK datagram socket.
 *
 * @example
 * ```ts
 * using sock = NetlinkSocket.open({ rcvTimeoutMs: 1000 });
 * sock.send(request);
 * const n = sock.recv(buffer);
 * ```
 */
export class NetlinkSocket extends OwnedFd {
  /** Port id the kernel assigned at bind (replies carry it as nlmsg_pid). */
  readonly portId: number;
  /** msg_flags of the last receive. */
  lastFlags = 0;
  // Send side: kernel address, one iovec, one msghdr, a copy buffer.
  private readonly sendBuf = pinned(SEND_BUF_LEN);
  private readonly sendIov = pinned(IOVEC_LEN);
  private readonly sendHdr = pinned(MSGHDR_LEN);
  private readonly kernelAddr = pinned(SOCKADDR_NL_LEN);
  // Receive side: the iovec points at the caller's buffer, rebuilt only when it changes.
  private readonly recvIov = pinned(IOVEC_LEN);
  private readonly recvHdr = pinned(MSGHDR_LEN);
  private readonly recvHdrDv: DataView;
  private readonly recvAddr = pinned(SOCKADDR_NL_LEN);
  private recvTarget: Uint8Array | undefined;

  private constructor(fd: number, portId: number) {
    super(fd);
    this.portId = portId;
    this.kernelAddr[0] = AF_NETLINK; // sockaddr_nl{nl_family = AF_NETLINK, nl_pid = 0 (kernel)}
    const send = new DataView(this.sendHdr.buffer);
    send.setBigUint64(0, addressOf(this.kernelAddr), true); // msg_name
    send.setUint32(8, SOCKADDR_NL_LEN, true); // msg_namelen
    send.setBigUint64(16, addressOf(this.sendIov), true); // msg_iov
    send.setBigUint64(24, 1n, true); // msg_iovlen
    new DataView(this.sendIov.buffer).setBigUint64(0, addressOf(this.sendBuf), true);
    this.recvHdrDv = new DataView(this.recvHdr.buffer);
    this.recvHdrDv.setBigUint64(16, addressOf(this.recvIov), true);
    this.recvHdrDv.setBigUint64(24, 1n, true);
  }

  /**
   * Opens, binds (the kernel picks the port id) and configures a netlink socket. Options out of
   * range throw RangeError before anything is opened; a failure after socket(2) closes the
   * socket again before it is thrown.
   */
  static open(opts: NetlinkSocketOptions = {}): NetlinkSocket {
    const timeout = opts.rcvTimeoutMs ?? 1000;
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new RangeError(`Receive timeout must be a finite count of ms >= 0: got ${timeout}`);
    }
    const rcvBuf = opts.rcvBufBytes ?? 0;
    if (!Number.isInteger(rcvBuf) || rcvBuf < 0 || rcvBuf > 0x7fff_ffff) {
      throw new RangeError(`Receive buffer must be an int from 0 to 2^31-1 bytes: got ${rcvBuf}`);
    }
    const fd = sysSocket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, opts.protocol ?? NETLINK_SOCK_DIAG);
    try {
      const addr = pinned(SOCKADDR_NL_LEN);
      addr[0] = AF_NETLINK;
      sysBind(fd, addr);
      const got = pinned(SOCKADDR_NL_LEN);
      sysGetsockname(fd, got);
      const portId = new DataView(got.buffer).getUint32(4, true);
      if (timeout > 0) {
        const tv = pinned(16); // struct timeval { time_t tv_sec; suseconds_t tv_usec; }
        const dv = new DataView(tv.buffer);
        dv.setBigInt64(0, BigInt(Math.floor(timeout / 1000)), true);
        dv.setBigInt64(8, BigInt(Math.floor((timeout % 1000) * 1000)), true);
        sysSetsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv);
      }
      if (rcvBuf > 0) {
        const v = pinned(4);
        new DataView(v.buffer).setInt32(0, rcvBuf, true);
        sysSetsockopt(fd, SOL_SOCKET, SO_RCVBUF, v);
      }
      return new NetlinkSocket(fd, portId);
    } catch (err) {
      releaseAfter(err, () => sysClose(fd));
      throw err;
    }
  }

  /** @internal */
  protected closedError(): Error {
    return new Error("Netlink socket is closed");
  }

  /** Whether msg_flags of the last receive had MSG_TRUNC (the datagram did not fit). */
  get lastTruncated(): boolean {
    return (this.lastFlags & MSG_TRUNC) !== 0;
  }

  /**
   * Sends one datagram to the kernel (at most 4 KiB, copied into a pinned buffer). A send
   * interrupted by a signal is retried (up to MAX_EINTR_RETRIES in a row, then OsError EINTR).
   */
  send(msg: Uint8Array): void {
    const fd = this.fd;
    if (msg.length > SEND_BUF_LEN) {
      throw new RangeError(
        `Netlink request too large (max ${SEND_BUF_LEN} bytes): ${msg.length} bytes`,
      );
    }
    this.sendBuf.set(msg);
    new DataView(this.sendIov.buffer).setBigUint64(8, BigInt(msg.length), true);
    const n = sysSendmsg(fd, this.sendHdr);
    if (n !== msg.length) throw new Error(`Sendmsg sent ${n} of ${msg.length} bytes`);
  }

  /**
   * Receives one datagram into `buf`, which must be backed by its own ArrayBuffer (allocate it
   * with `new Uint8Array(new ArrayBuffer(n))` so its address is stable). Returns the byte count;
   * throws OsError (code EAGAIN when SO_RCVTIMEO expires). A receive interrupted by a signal
   * (EINTR, which SO_RCVTIMEO causes even under SA_RESTART) waits again, SO_RCVTIMEO afresh, up to
   * MAX_EINTR_RETRIES times in a row; then OsError EINTR is thrown.
   */
  recv(buf: Uint8Array): number {
    const fd = this.fd;
    if (buf !== this.recvTarget) {
      const iov = new DataView(this.recvIov.buffer);
      iov.setBigUint64(0, addressOf(buf), true);
      iov.setBigUint64(8, BigInt(buf.length), true);
      this.recvTarget = buf;
    }
    const h = this.recvHdrDv;
    h.setBigUint64(0, addressOf(this.recvAddr), true);
    h.setUint32(8, SOCKADDR_NL_LEN, true);
    h.setInt32(48, 0, true);
    const n = sysRecvmsg(fd, this.recvHdr);
    this.lastFlags = h.getInt32(48, true);
    return n;
  }
}
