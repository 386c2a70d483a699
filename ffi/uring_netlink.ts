/**
 * Netlink dump receives through io_uring (`--ioUring`): up to `batch` recvmsg requests in flight
 * on the namespace's socket, each with its own pooled buffer, so one io_uring_enter both submits
 * the re-armed requests and collects every datagram the kernel has ready. One reader (one ring,
 * one buffer pool) serves every namespace in turn, since dumps are sequential; after each
 * namespace's dump the requests still in flight are cancelled.
 *
 * @module
 */
import { OsError } from "./errors.ts";
import {
  addressOf,
  ECANCELED,
  EINTR,
  ENOENT,
  interruptedTooOften,
  IOVEC_LEN,
  MAX_EINTR_RETRIES,
  MSG_TRUNC,
  MSGHDR_LEN,
} from "./libc.ts";
import { releaseAfter } from "../src/util/errors.ts";
import type { NetlinkSocket } from "./netlink_socket.ts";
import { IoUring, UringClosedError } from "./uring.ts";

export { UringClosedError };

const CANCEL_TAG = 0xffff_ffff;
/** io_uring_setup's limit (IORING_MAX_ENTRIES); the ring holds the batch plus a cancel. */
const MAX_RING_ENTRIES = 32768;

/**
 * A reader whose cancel after a dump failed ({@link UringNetlinkReader.idle}): requests of that
 * dump may still complete, so the reader refuses to serve another one. `cause` is the failure.
 * Close the reader and set up a new one (or receive with recvmsg).
 *
 * @example
 * ```ts
 * try {
 *   dumper.dump(reader.transport(sock), sink);
 * } catch (err) {
 *   if (err instanceof UringBrokenError) reader.close(); // and make a new reader
 * }
 * ```
 */
export class UringBrokenError extends Error {
  /**
   * @param op the method called on the broken reader
   * @param cause the failure that broke it
   */
  constructor(readonly op: string, cause: unknown) {
    super(
      `The io_uring reader is broken since its cancel failed: ${op}: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.name = "UringBrokenError";
  }
}

/** What the dump driver uses (the same shape as NetlinkSocket's receive side). */
export interface UringTransport {
  readonly portId: number;
  send(msg: Uint8Array): void;
  recv(buf: Uint8Array): number;
  readonly lastTruncated: boolean;
  /** Cancels the receives still in flight (call when the dump is over). */
  idle(): void;
}

/** Counters of a reader. */
export interface UringStats {
  /** Receives that found no completion ready and waited. */
  waits: number;
  /** Datagrams received. */
  packets: number;
  /** Requests cancelled after a dump. */
  cancelled: number;
  /** Datagrams that completed after their dump was over (dropped). */
  orphans: number;
}

/** One ring and `batch` receive buffers, shared by every namespace's socket. */
export class UringNetlinkReader implements Disposable {
  /** Counters. */
  readonly stats: UringStats = { waits: 0, packets: 0, cancelled: 0, orphans: 0 };

  /** io_uring_enter system calls made (submits and waits). */
  get enters(): number {
    return this.ring.enters;
  }
  private readonly ring: IoUring;
  private readonly bufs: Uint8Array[] = [];
  /** The iovecs and msghdrs the kernel reads (kept referenced, so never collected). */
  private readonly iovs: Uint8Array[] = [];
  private readonly hdrs: Uint8Array[] = [];
  private readonly hdrAddr: bigint[] = [];
  private inflight = 0;
  private fd = -1;
  /** Whether the datagram of the last receive was longer than what was copied out. */
  private lastTruncated = false;
  /** Why the reader is broken (the failure of an idle()), or undefined while it is usable. */
  private broken: unknown = undefined;

  /** Completions reaped but not yet handed out: buffer index and result, in order. */
  private readonly reapedIdx: Int32Array;
  private readonly reapedRes: Int32Array;
  private reapedHead = 0;
  private reapedCount = 0;

  /**
   * Sets up the ring and the buffers. Throws RangeError for a batch, timeout or cqeBatch out of
   * range, OsError when the kernel refuses io_uring; when the buffers cannot be allocated (a
   * RangeError from ArrayBuffer), the ring set up before is closed again.
   *
   * @param batch recvmsg requests in flight (ioUringRecvBatch), 1 to 32767
   * @param bufferSize bytes per receive buffer (at least the kernel's 32 KiB dump datagrams)
   * @param timeoutMs how long a receive waits (like SO_RCVTIMEO; 0 = forever)
   * @param cqeBatch completions reaped per look at the ring (ioUringCqeBatch; below 1 means 1)
   */
  constructor(
    readonly batch: number,
    readonly bufferSize: number,
    private readonly timeoutMs: number,
    readonly cqeBatch = 128,
  ) {
    if (!Number.isInteger(batch) || batch < 1 || batch >= MAX_RING_ENTRIES) {
      throw new RangeError(
        `Receive batch must be an integer from 1 to ${MAX_RING_ENTRIES - 1}: got ${batch}`,
      );
    }
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new RangeError(`Receive timeout must be a finite count of ms >= 0: got ${timeoutMs}`);
    }
    if (!Number.isInteger(cqeBatch)) {
      throw new RangeError(`Completion batch must be an integer: got ${cqeBatch}`);
    }
    this.reapedIdx = new Int32Array(Math.max(1, cqeBatch));
    this.reapedRes = new Int32Array(Math.max(1, cqeBatch));
    this.ring = IoUring.setup(Math.max(2, batch + 1));
    try {
      this.allocate();
    } catch (err) {
      releaseAfter(err, () => this.ring.close());
      throw err;
    }
  }

  /** The receive buffers, each with its iovec and msghdr. */
  private allocate(): void {
    const { batch, bufferSize } = this;
    for (let i = 0; i < batch; i++) {
      const buf = new Uint8Array(new ArrayBuffer(bufferSize));
      const iov = new Uint8Array(new ArrayBuffer(IOVEC_LEN));
      const hdr = new Uint8Array(new ArrayBuffer(MSGHDR_LEN));
      const iv = new DataView(iov.buffer);
      iv.setBigUint64(0, addressOf(buf), true);
      iv.setBigUint64(8, BigInt(bufferSize), true);
      const h = new DataView(hdr.buffer);
      h.setBigUint64(16, addressOf(iov), true); // msg_iov
      h.setBigUint64(24, 1n, true); // msg_iovlen
      this.bufs.push(buf);
      this.iovs.push(iov);
      this.hdrs.push(hdr);
      this.hdrAddr.push(addressOf(hdr));
    }
  }

  /** Whether {@link UringNetlinkReader.close} was called. */
  get closed(): boolean {
    return this.ring.closed;
  }

  /** Whether a failed cleanup made the reader unusable (every use throws UringBrokenError). */
  get isBroken(): boolean {
    return this.broken !== undefined;
  }

  /**
   * A transport for `sock` (reads go through this reader's ring). Once the reader is closed,
   * every method of the transport throws {@link UringClosedError}; once it is broken,
   * {@link UringBrokenError}.
   */
  transport(sock: NetlinkSocket): UringTransport {
    this.usable("transport");
    let truncated = false;
    return {
      portId: sock.portId,
      send: (msg) => {
        this.usable("send");
        sock.send(msg);
      },
      recv: (buf) => {
        const n = this.recv(sock.fd, buf);
        truncated = this.lastTruncated;
        return n;
      },
      get lastTruncated() {
        return truncated;
      },
      idle: () => this.idle(),
    };
  }

  /** Throws when the reader can no longer be used. */
  private usable(op: string): void {
    if (this.ring.closed) throw new UringClosedError(op);
    if (this.broken !== undefined) throw new UringBrokenError(op, this.broken);
  }

  private arm(i: number): void {
    const sqe = this.ring.getSqe();
    if (sqe < 0) throw new Error(`Submission ring is full: ${this.inflight} receives in flight`);
    // MSG_TRUNC: the result is the datagram's real length, so a short buffer shows.
    this.ring.prepRecvmsg(sqe, this.fd, this.hdrAddr[i], MSG_TRUNC);
    this.ring.setUserData(sqe, i);
    this.inflight++;
  }

  /** Receives the next datagram into `out`; sets lastTruncated (no object per datagram). */
  private recv(fd: number, out: Uint8Array): number {
    this.usable("recv");
    if (fd !== this.fd) {
      this.idle();
      this.fd = fd;
    }
    if (this.inflight === 0) {
      for (let i = 0; i < this.batch; i++) this.arm(i);
      this.ring.submit();
    }
    let i = 0;
    let res = 0;
    for (let retries = 0;; retries++) {
      if (this.reapedCount === 0) this.reap();
      i = this.reapedIdx[this.reapedHead];
      res = this.reapedRes[this.reapedHead];
      this.reapedHead = (this.reapedHead + 1) % this.reapedIdx.length;
      this.reapedCount--;
      if (res >= 0) break;
      if (res !== -EINTR) throw new OsError("recvmsg (io_uring)", -res);
      if (retries === MAX_EINTR_RETRIES) throw interruptedTooOften("recvmsg (io_uring)");
      this.arm(i); // interrupted: the same buffer asks again, submitted with the next wait
    }
    this.stats.packets++;
    const n = Math.min(res, this.bufferSize, out.length);
    out.set(this.bufs[i].subarray(0, n));
    this.arm(i); // submitted with the next wait
    this.lastTruncated = res > n;
    return n;
  }

  /** Waits for one completion, then takes every ready one up to cqeBatch, in ring order. */
  private reap(): void {
    if (this.ring.ready() === 0) this.stats.waits++;
    this.reapedHead = 0;
    do {
      const cqe = this.ring.waitCqe(this.timeoutMs);
      this.reapedIdx[this.reapedCount] = cqe.userData;
      this.reapedRes[this.reapedCount] = cqe.res;
      this.reapedCount++;
      this.ring.cqeSeen();
      this.inflight--;
    } while (this.reapedCount < this.reapedIdx.length && this.ring.ready() > 0);
  }

  /**
   * Cancels what is still in flight on the current socket and reaps it. When this fails (the
   * cancel is refused, or its completions do not come), requests of the finished dump may still
   * be in flight and complete later: the reader marks itself broken, and every later use throws
   * {@link UringBrokenError} instead of handing such stale datagrams to the next dump. Only
   * {@link UringNetlinkReader.close} is left to call.
   */
  idle(): void {
    this.usable("idle");
    try {
      this.cancelInflight();
    } catch (err) {
      this.broken = err;
      throw err;
    }
  }

  private cancelInflight(): void {
    // Datagrams reaped but never asked for belong to a dump that is over.
    this.stats.orphans += this.reapedCount;
    this.reapedCount = 0;
    this.reapedHead = 0;
    if (this.inflight === 0 || this.fd < 0) return;
    const sqe = this.ring.getSqe();
    if (sqe < 0) throw new Error("Submission ring is full: no room for the cancel");
    this.ring.prepCancelFd(sqe, this.fd);
    this.ring.setUserData(sqe, CANCEL_TAG);
    this.ring.submit();
    let cancelDone = false;
    while (this.inflight > 0 || !cancelDone) {
      const cqe = this.ring.waitCqe(1000);
      const { userData, res } = cqe;
      this.ring.cqeSeen();
      if (userData === CANCEL_TAG) {
        if (res < 0 && res !== -ENOENT) throw new OsError("io_uring cancel", -res);
        cancelDone = true;
        continue;
      }
      this.inflight--;
      if (res === -ECANCELED) this.stats.cancelled++;
      else if (res >= 0) this.stats.orphans++;
    }
  }

  /**
   * Cancels what is in flight, unmaps and closes the ring (idempotent; the ring is closed even
   * when the cancel fails, whose error is then thrown). A broken reader is closed without a
   * cancel: closing the ring ends whatever is left in flight.
   */
  close(): void {
    if (this.ring.closed) return;
    if (this.broken === undefined) {
      try {
        this.idle();
      } catch (err) {
        releaseAfter(err, () => this.ring.close());
        throw err;
      }
    }
    this.ring.close();
  }

  /** Same as {@link UringNetlinkReader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
