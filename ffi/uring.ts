/**
 * io_uring over the raw system calls (io_uring_setup, io_uring_enter, mmap), with a
 * liburing-style API: {@link IoUring.setup}, {@link IoUring.getSqe}, {@link IoUring.prepRecvmsg},
 * {@link IoUring.submit}, {@link IoUring.waitCqe}, {@link IoUring.cqeSeen}. Debian's liburing 2.3
 * exports none of its inline helpers, so nothing here needs liburing installed; where the kernel
 * refuses io_uring (ENOSYS, EPERM under seccomp or `kernel.io_uring_disabled`), setup throws an
 * OsError and callers use the plain syscalls.
 *
 * Single-threaded use only (one ring per thread, no SQPOLL). The head and tail words shared with
 * the kernel are read and written with `Atomics.load`/`Atomics.store` (sequentially consistent,
 * so at least the acquire/release ordering liburing uses); the SQEs and CQEs between them are
 * plain memory. A closed ring throws {@link UringClosedError} rather than reading unmapped memory.
 *
 * @module
 */
import { OsError } from "./errors.ts";
import { OwnedFd } from "./owned_fd.ts";
import {
  addressOf,
  EINTR,
  EOPNOTSUPP,
  ETIME,
  interruptedTooOften,
  MAX_EINTR_RETRIES,
  sysCall,
  sysCallErrno,
  sysClose,
  sysMmapShared,
  sysMunmap,
} from "./libc.ts";
import { releaseAfter } from "../src/util/errors.ts";

const SYS_IO_URING_SETUP = 425;
const SYS_IO_URING_ENTER = 426;
/** Sizes of struct io_uring_params, io_uring_sqe, io_uring_cqe. */
const PARAMS_LEN = 120;
const SQE_LEN = 64;
const CQE_LEN = 16;
const IORING_OFF_SQ_RING = 0n;
const IORING_OFF_CQ_RING = 0x8000000n;
const IORING_OFF_SQES = 0x10000000n;
const IORING_FEAT_SINGLE_MMAP = 1 << 0;
const IORING_FEAT_EXT_ARG = 1 << 8;
const IORING_ENTER_GETEVENTS = 1 << 0;
const IORING_ENTER_EXT_ARG = 1 << 3;
/** Opcodes. */
export const IORING_OP_RECVMSG = 10;
export const IORING_OP_ASYNC_CANCEL = 14;
/** Flags of IORING_OP_ASYNC_CANCEL (Linux 5.19+): every request on the file descriptor. */
export const IORING_ASYNC_CANCEL_ALL = 1 << 0;
export const IORING_ASYNC_CANCEL_FD = 1 << 1;

/**
 * One completion, read out of the ring (valid until the next {@link IoUring.waitCqe}):
 * `userData` is what the request was tagged with, `res` its result (bytes, or −errno), `flags`
 * its IORING_CQE_F_* flags.
 */
export interface Cqe {
  userData: number;
  res: number;
  flags: number;
}

/**
 * A ring used after {@link IoUring.close} (or a reader after its close): thrown instead of
 * touching memory that is no longer mapped.
 *
 * @example
 * ```ts
 * const ring = IoUring.setup(4);
 * ring.close();
 * ring.getSqe(); // throws UringClosedError: "The io_uring ring is closed: getSqe after close()"
 * ```
 */
export class UringClosedError extends Error {
  /** @param op the method called on the closed ring */
  constructor(readonly op: string) {
    super(`The io_uring ring is closed: ${op} after close()`);
    this.name = "UringClosedError";
  }
}

/** The rings' memory, as mapped by {@link IoUring.setup}. */
interface Mapped {
  maps: { p: Deno.PointerObject; len: number }[];
  sq: ArrayBuffer;
  cq: ArrayBuffer;
  sqes: ArrayBuffer;
}

/** An io_uring instance: submission and completion rings mapped into this process. */
export class IoUring extends OwnedFd {
  /** Submission queue entries. */
  readonly sqEntries: number;
  /** Completion queue entries. */
  readonly cqEntries: number;
  /** IORING_FEAT_* the kernel offers. */
  readonly features: number;
  /** io_uring_enter calls made. */
  enters = 0;
  private readonly fdBig: bigint;
  private readonly maps: { p: Deno.PointerObject; len: number }[];
  private readonly sq: Uint32Array;
  private readonly cq: Uint32Array;
  private readonly cqDv: DataView;
  private readonly sqes: DataView;
  private readonly sqHead: number;
  private readonly sqTail: number;
  private readonly sqMask: number;
  private readonly sqArray: number;
  private readonly cqHead: number;
  private readonly cqTail: number;
  private readonly cqMask: number;
  private readonly cqes: number;
  /** SQEs handed out by getSqe and not yet submitted. */
  private pending = 0;
  private localTail: number;
  private readonly cqe: Cqe = { userData: 0, res: 0, flags: 0 };
  /** struct __kernel_timespec of the wait's timeout. */
  private readonly timespec = new DataView(new ArrayBuffer(16));
  /** struct io_uring_getevents_arg { sigmask = 0, sigmask_sz = 0, pad, ts = &timespec }. */
  private readonly waitArg = new Uint8Array(new ArrayBuffer(24));
  private readonly waitArgAddr = addressOf(this.waitArg);

  /** Takes over `fd` and its mappings; nothing here can fail, so setup releases them on failure. */
  private constructor(fd: number, params: DataView, mem: Mapped) {
    super(fd);
    this.fdBig = BigInt(fd);
    this.maps = mem.maps;
    this.sqEntries = params.getUint32(0, true);
    this.cqEntries = params.getUint32(4, true);
    this.features = params.getUint32(20, true);
    const sqOff = (i: number) => params.getUint32(40 + i * 4, true); // struct io_sqring_offsets
    const cqOff = (i: number) => params.getUint32(80 + i * 4, true); // struct io_cqring_offsets
    this.sq = new Uint32Array(mem.sq, 0, mem.sq.byteLength >>> 2);
    this.cq = new Uint32Array(mem.cq, 0, mem.cq.byteLength >>> 2);
    this.cqDv = new DataView(mem.cq);
    this.sqes = new DataView(mem.sqes);
    this.sqHead = sqOff(0) >>> 2;
    this.sqTail = sqOff(1) >>> 2;
    this.sqMask = this.sq[sqOff(2) >>> 2];
    this.sqArray = sqOff(6) >>> 2;
    this.cqHead = cqOff(0) >>> 2;
    this.cqTail = cqOff(1) >>> 2;
    this.cqMask = this.cq[cqOff(2) >>> 2];
    this.cqes = cqOff(5);
    this.localTail = Atomics.load(this.sq, this.sqTail);
    new DataView(this.waitArg.buffer).setBigUint64(
      16,
      addressOf(new Uint8Array(this.timespec.buffer)),
      true,
    );
  }

  /**
   * io_uring_setup(entries): a ring of at least `entries` submission slots (the kernel rounds up
   * to a power of two; the completion ring is twice as large). Throws OsError (ENOSYS where the
   * kernel has no io_uring, EPERM where it is disabled, ENOMEM where the rings cannot be mapped);
   * whatever was created before the failure (the ring's fd, mappings) is released.
   */
  static setup(entries: number): IoUring {
    const params = new Uint8Array(new ArrayBuffer(PARAMS_LEN));
    const fd = sysCall("io_uring_setup", SYS_IO_URING_SETUP, entries, addressOf(params));
    const dv = new DataView(params.buffer);
    const maps: Mapped["maps"] = [];
    try {
      const map = (len: number, offset: bigint): ArrayBuffer => {
        const p = sysMmapShared(fd, len, offset);
        maps.push({ p, len });
        return Deno.UnsafePointerView.getArrayBuffer(p, len);
      };
      const sqEntries = dv.getUint32(0, true);
      const cqEntries = dv.getUint32(4, true);
      const sqLen = dv.getUint32(40 + 6 * 4, true) + sqEntries * 4; // sq_off.array + entries
      const cqLen = dv.getUint32(80 + 5 * 4, true) + cqEntries * CQE_LEN; // cq_off.cqes + entries
      let sq: ArrayBuffer;
      let cq: ArrayBuffer;
      if (dv.getUint32(20, true) & IORING_FEAT_SINGLE_MMAP) {
        sq = cq = map(Math.max(sqLen, cqLen), IORING_OFF_SQ_RING); // one mapping, both rings
      } else {
        sq = map(sqLen, IORING_OFF_SQ_RING);
        cq = map(cqLen, IORING_OFF_CQ_RING);
      }
      const sqes = map(sqEntries * SQE_LEN, IORING_OFF_SQES);
      return new IoUring(fd, dv, { maps, sq, cq, sqes });
    } catch (err) {
      for (const m of maps) releaseAfter(err, () => sysMunmap(m.p, m.len));
      releaseAfter(err, () => sysClose(fd));
      throw err;
    }
  }

  /** @internal */
  protected closedError(op: string): Error {
    return new UringClosedError(op);
  }

  /**
   * The next free submission slot, zeroed, or -1 when the submission ring is full (submit first).
   * Fill it with a prep method and {@link IoUring.setUserData}.
   */
  getSqe(): number {
    this.open("getSqe");
    const head = Atomics.load(this.sq, this.sqHead);
    if (((this.localTail - head) >>> 0) >= this.sqEntries) return -1;
    const idx = this.localTail & this.sqMask;
    const base = idx * SQE_LEN;
    for (let i = 0; i < SQE_LEN; i += 4) this.sqes.setUint32(base + i, 0, true);
    this.sq[this.sqArray + idx] = idx;
    this.localTail = (this.localTail + 1) >>> 0;
    this.pending++;
    return idx;
  }

  /** io_uring_prep_recvmsg: receive into the msghdr at `msghdr` (an address) on `fd`. */
  prepRecvmsg(sqe: number, fd: number, msghdr: bigint, flags = 0): void {
    this.open("prepRecvmsg");
    const b = sqe * SQE_LEN;
    this.sqes.setUint8(b, IORING_OP_RECVMSG);
    this.sqes.setInt32(b + 4, fd, true);
    this.sqes.setBigUint64(b + 16, msghdr, true);
    this.sqes.setUint32(b + 24, 1, true);
    this.sqes.setUint32(b + 28, flags, true);
  }

  /**
   * io_uring_prep_cancel_fd: cancel every request on `fd` (IORING_ASYNC_CANCEL_FD | ALL, Linux
   * 5.19+). Its completion's res is the number cancelled or −errno.
   */
  prepCancelFd(sqe: number, fd: number): void {
    this.open("prepCancelFd");
    const b = sqe * SQE_LEN;
    this.sqes.setUint8(b, IORING_OP_ASYNC_CANCEL);
    this.sqes.setInt32(b + 4, fd, true);
    this.sqes.setUint32(b + 28, IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL, true);
  }

  /** io_uring_sqe_set_data: tags the request; its completion carries the tag. */
  setUserData(sqe: number, userData: number): void {
    this.open("setUserData");
    this.sqes.setBigUint64(sqe * SQE_LEN + 32, BigInt(userData), true);
  }

  /**
   * io_uring_submit: hands the prepared SQEs to the kernel; returns how many it took. EINTR is
   * retried (bounded by MAX_EINTR_RETRIES).
   */
  submit(): number {
    this.open("submit");
    if (this.pending === 0) return 0;
    Atomics.store(this.sq, this.sqTail, this.localTail);
    for (let retries = 0;; retries++) {
      const n = this.enter(this.pending, 0, 0, 0n);
      if (n >= 0) {
        this.pending -= n;
        return n;
      }
      if (n !== -EINTR) throw new OsError("io_uring_enter", -n);
      if (retries === MAX_EINTR_RETRIES) throw interruptedTooOften("io_uring_enter");
    }
  }

  /** Completions ready without waiting. */
  ready(): number {
    this.open("ready");
    return this.readyNow();
  }

  /** Completions ready: the kernel's tail (acquire: the CQEs before it are written) − our head. */
  private readyNow(): number {
    return (Atomics.load(this.cq, this.cqTail) - Atomics.load(this.cq, this.cqHead)) >>> 0;
  }

  /**
   * io_uring_wait_cqe with a timeout: the oldest completion, waiting up to `timeoutMs` (0 = no
   * limit) for one. Throws OsError ETIME when none came in time. A wait interrupted by a signal
   * (EINTR) goes on until the same deadline, for up to MAX_EINTR_RETRIES interruptions in a row,
   * then throws OsError EINTR. Mark the completion consumed with {@link IoUring.cqeSeen}.
   */
  waitCqe(timeoutMs = 0): Cqe {
    this.open("waitCqe");
    if (this.readyNow() === 0) this.waitReady(timeoutMs);
    const head = Atomics.load(this.cq, this.cqHead);
    const at = this.cqes + (head & this.cqMask) * CQE_LEN;
    this.cqe.userData = Number(this.cqDv.getBigUint64(at, true));
    this.cqe.res = this.cqDv.getInt32(at + 8, true);
    this.cqe.flags = this.cqDv.getUint32(at + 12, true);
    return this.cqe;
  }

  /** Submits what is pending and waits until a completion is ready (or the deadline passed). */
  private waitReady(timeoutMs: number): void {
    let arg = 0n;
    let flags = IORING_ENTER_GETEVENTS;
    const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
    if (timeoutMs > 0) {
      if (!(this.features & IORING_FEAT_EXT_ARG)) {
        throw new OsError(
          "io_uring_enter",
          EOPNOTSUPP,
          "timeouts need IORING_FEAT_EXT_ARG (Linux 5.11)",
        );
      }
      arg = this.waitArgAddr;
      flags |= IORING_ENTER_EXT_ARG;
    }
    let interruptions = 0;
    while (this.readyNow() === 0) {
      if (timeoutMs > 0) {
        const left = interruptions === 0 ? timeoutMs : deadline - performance.now();
        if (left <= 0) throw new OsError("io_uring_enter", ETIME);
        this.setTimeout(left);
      }
      Atomics.store(this.sq, this.sqTail, this.localTail);
      const n = this.enter(this.pending, 1, flags, arg);
      if (n >= 0) {
        this.pending -= n;
      } else if (n === -EINTR) {
        if (interruptions++ === MAX_EINTR_RETRIES) throw interruptedTooOften("io_uring_enter");
      } else if (n === -ETIME && this.readyNow() > 0) {
        break;
      } else {
        throw new OsError("io_uring_enter", -n);
      }
    }
  }

  /** The wait's struct __kernel_timespec, written as u32 halves (no bigint). */
  private setTimeout(ms: number): void {
    const sec = Math.floor(ms / 1000);
    const ts = this.timespec;
    ts.setUint32(0, sec >>> 0, true); // tv_sec, low half
    ts.setUint32(4, Math.floor(sec / 0x1_0000_0000), true); // tv_sec, high half
    ts.setUint32(8, Math.floor((ms - sec * 1000) * 1_000_000), true); // tv_nsec
    ts.setUint32(12, 0, true);
  }

  /** io_uring_cqe_seen: the oldest completion is consumed. */
  cqeSeen(): void {
    this.open("cqeSeen");
    // Release: the kernel may reuse the slot once it sees the new head.
    Atomics.store(this.cq, this.cqHead, (Atomics.load(this.cq, this.cqHead) + 1) >>> 0);
  }

  /** io_uring_enter(2): its result, or −errno. */
  private enter(toSubmit: number, minComplete: number, flags: number, arg: bigint): number {
    const argSize = flags & IORING_ENTER_EXT_ARG ? 24 : 0;
    this.enters++;
    return sysCallErrno(SYS_IO_URING_ENTER, this.fdBig, toSubmit, minComplete, flags, arg, argSize);
  }

  /**
   * Unmaps the rings and closes the ring (idempotent). The kernel cancels what is still in
   * flight. Every other method throws {@link UringClosedError} from now on.
   */
  override close(): void {
    if (this.closed) return;
    let failure: unknown;
    for (const m of this.maps.splice(0)) {
      try {
        sysMunmap(m.p, m.len);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure === undefined) {
      super.close();
      return;
    }
    releaseAfter(failure, () => super.close());
    throw failure;
  }
}
