/**
 * `--socketOwners`: the process holding each socket (pid and command, as `ss -p` shows them),
 * from a scan of every `/proc/<pid>/fd` link, cached by socket inode. A poll scans at most once,
 * and only when it meets an inode the cache does not know; an inode still unknown after that
 * scan (its owner is in another PID namespace, or gone) is remembered as ownerless, so it is not
 * scanned for again. Each scan replaces the cache: closed sockets leave it then.
 *
 * @module
 */
import { type FdScanStats, readComm, scanSocketFds } from "../../ffi/proc_fd.ts";
import type { RecordExtra } from "../record/extra.ts";

/** Walks every socket fd: `onSocket(inode, pid)`, pids in ascending order. */
export type FdScanner = (onSocket: (inode: number, pid: number) => void) => FdScanStats;

interface Owner {
  /** 0: ownerless. */
  readonly pid: number;
  /** The last poll that asked for it. */
  seen: number;
}

/** What the scans cost, for metrics and the log. */
export interface OwnerScanStats {
  scans: number;
  /** fds read by all scans. */
  fds: number;
  /** Wall time of all scans, ms. */
  ms: number;
  /** Sockets the last scan found. */
  sockets: number;
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
  /** Scans so far and their cost. */
  readonly stats: OwnerScanStats = { scans: 0, fds: 0, ms: 0, sockets: 0 };
  private byInode = new Map<number, Owner>();
  private comms = new Map<number, Uint8Array>();
  private poll = 0;
  private scannedIn = -1;

  /**
   * @param scanner the fd walk (default: /proc through libc)
   * @param comm the command name of a pid (default: /proc/PID/comm)
   */
  constructor(
    private readonly scanner: FdScanner = scanSocketFds,
    private readonly comm: (pid: number) => Uint8Array = readComm,
  ) {}

  /** A new poll: one more scan allowed. */
  beginPoll(): void {
    this.poll++;
  }

  /**
   * Puts the owner of the socket with `inode` into `extra` and returns true, or returns false
   * when it has none (inode 0: a socket no process holds, such as time-wait). `mayScan` false:
   * the cache only (a socket already gone).
   */
  fill(inode: number, extra: RecordExtra, mayScan = true): boolean {
    if (inode === 0) return false;
    let o = this.byInode.get(inode);
    if (o === undefined) {
      if (!mayScan) return false;
      if (this.scannedIn !== this.poll) {
        this.scan();
        o = this.byInode.get(inode);
      }
      if (o === undefined) {
        o = { pid: 0, seen: this.poll };
        this.byInode.set(inode, o);
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

  /** Rebuilds the cache from a full scan (ownerless inodes asked for lately stay ownerless). */
  private scan(): void {
    const t0 = performance.now();
    this.scannedIn = this.poll;
    const next = new Map<number, Owner>();
    const poll = this.poll;
    const st = this.scanner((inode, pid) => {
      if (!next.has(inode)) next.set(inode, { pid, seen: poll });
    });
    for (const [inode, o] of this.byInode) {
      if (o.pid === 0 && o.seen >= poll - 1 && !next.has(inode)) next.set(inode, o);
    }
    this.byInode = next;
    this.comms = new Map(); // pids are reused: names are read again
    this.stats.scans++;
    this.stats.fds += st.fds;
    this.stats.sockets = st.sockets;
    this.stats.ms += performance.now() - t0;
  }
}
