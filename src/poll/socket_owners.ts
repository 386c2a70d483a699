/**
 * `--socketOwners`: the process holding each socket (pid and command, as `ss -p` shows them),
 * from a walk of every `/proc/<pid>/fd` link, cached by socket inode.
 *
 * A poll walks at most once, and only when it meets an inode the cache does not know; a walk
 * stops at its time budget and the next poll that needs one resumes it where it stopped, so no
 * poll pays more than the budget. When a walk reaches the last process (a cycle), what it did not
 * find again leaves the cache, and an inode asked for since before the cycle began and still not
 * found is remembered as ownerless (its owner is in another PID namespace, or gone), so it is not
 * walked for again.
 *
 * @module
 */
import {
  type FdScanOptions,
  type FdScanStats,
  readComm,
  scanSocketFds,
} from "../../ffi/proc_fd.ts";
import type { RecordExtra } from "../record/extra.ts";

/** Walks socket fds: `onSocket(inode, pid)`, pids in ascending order (see scanSocketFds). */
export type FdScanner = (
  onSocket: (inode: number, pid: number) => void,
  o: FdScanOptions,
) => FdScanStats;

interface Owner {
  /** 0: ownerless. */
  readonly pid: number;
  /** The cycle that found it. */
  readonly cycle: number;
  /** The last poll that asked for it. */
  seen: number;
}

/** What the walks cost, for metrics and the log. */
export interface OwnerScanStats {
  /** Walks (one per poll at most; a cycle may take several). */
  scans: number;
  /** Cycles completed. */
  cycles: number;
  /** fds read by all walks. */
  fds: number;
  /** Wall time of all walks, ms. */
  ms: number;
}

/**
 * The owner cache. One per thread that encodes records.
 *
 * @example
 * ```ts
 * const owners = new SocketOwners();
 * owners.beginPoll();
 * if (owners.fill(view.inode, extra)) console.log(extra.ownerPid);
 * ```
 */
export class SocketOwners {
  /** Walks so far and their cost. */
  readonly stats: OwnerScanStats = { scans: 0, cycles: 0, fds: 0, ms: 0 };
  private readonly byInode = new Map<number, Owner>();
  /** Inodes asked for and not found yet: the poll each was first asked in. */
  private readonly pending = new Map<number, number>();
  private comms = new Map<number, Uint8Array>();
  private poll = 0;
  private scannedIn = -1;
  private cycle = 0;
  /** The poll the running cycle began in. */
  private cycleBegan = 0;
  /** Where the running cycle resumes (0: a new cycle begins). */
  private resumeAfter = 0;

  /**
   * @param scanner the fd walk (default: /proc through libc)
   * @param comm the command name of a pid (default: /proc/PID/comm)
   * @param budgetMs how long one walk may run
   */
  constructor(
    private readonly scanner: FdScanner = scanSocketFds,
    private readonly comm: (pid: number) => Uint8Array = readComm,
    private readonly budgetMs = 100,
  ) {}

  /** A new poll: one more walk allowed. */
  beginPoll(): void {
    this.poll++;
  }

  /** Whether the last {@link SocketOwners.fill} found no owner yet (its walk has not ended). */
  pendingLast = false;

  /**
   * Puts the owner of the socket with `inode` into `extra` and returns true, or returns false
   * when none is known (inode 0: a socket no process holds, such as time-wait; or the walk has not
   * reached it yet: then {@link SocketOwners.pendingLast}). `mayScan` false: the cache only (a
   * socket already gone).
   */
  fill(inode: number, extra: RecordExtra, mayScan = true): boolean {
    this.pendingLast = false;
    if (inode === 0) return false;
    let o = this.byInode.get(inode);
    if (o === undefined) {
      if (!mayScan) return false;
      if (!this.pending.has(inode)) this.pending.set(inode, this.poll);
      if (this.scannedIn !== this.poll) {
        this.scan();
        o = this.byInode.get(inode);
      }
      if (o === undefined) {
        this.pendingLast = true;
        return false;
      }
    }
    o.seen = this.poll;
    if (o.pid === 0) return false;
    let comm = this.comms.get(o.pid);
    if (comm === undefined) this.comms.set(o.pid, comm = this.comm(o.pid));
    extra.ownerPid = o.pid;
    extra.ownerComm = comm;
    return true;
  }

  /** One walk: the running cycle, resumed, for at most the budget. */
  private scan(): void {
    const t0 = performance.now();
    this.scannedIn = this.poll;
    if (this.resumeAfter === 0) {
      this.cycle++;
      this.cycleBegan = this.poll;
    }
    const cycle = this.cycle;
    const st = this.scanner((inode, pid) => {
      // The lowest pid of this cycle wins (a shared socket); older answers are replaced.
      if (this.byInode.get(inode)?.cycle !== cycle) {
        this.byInode.set(inode, { pid, cycle, seen: this.poll });
      }
      this.pending.delete(inode);
    }, { after: this.resumeAfter, deadline: t0 + this.budgetMs });
    this.resumeAfter = st.resumeAfter;
    if (st.resumeAfter === 0) this.endCycle();
    this.stats.scans++;
    this.stats.fds += st.fds;
    this.stats.ms += performance.now() - t0;
  }

  /**
   * A walk reached the last process: owners it did not find again go, and so do ownerless
   * answers no poll asked for lately; an inode asked for since before the cycle began and not
   * found is ownerless.
   */
  private endCycle(): void {
    const cycle = this.cycle;
    for (const [inode, o] of this.byInode) {
      if (o.pid !== 0 ? o.cycle !== cycle : o.seen < this.poll - 1) this.byInode.delete(inode);
    }
    for (const [inode, asked] of this.pending) {
      // Asked before the cycle began: the whole cycle looked for it. Else the next cycle will.
      if (asked > this.cycleBegan) continue;
      this.byInode.set(inode, { pid: 0, cycle, seen: this.poll });
      this.pending.delete(inode);
    }
    this.comms = new Map(); // pids are reused: names are read again
    this.stats.cycles++;
  }
}
