/**
 * Which process holds which socket: a walk of `/proc/<pid>/fd/*` reading each link
 * (`socket:[<inode>]`), as `ss -p` does. Through libc: Deno asks for --allow-all to read /proc.
 *
 * @module
 */
import { libc, listDir, readSmallFile } from "./libc.ts";

/** What one {@link scanSocketFds} looked at. */
export interface FdScanStats {
  /** Processes whose fd directory was read. */
  processes: number;
  /** Links read. */
  fds: number;
  /** Links that were sockets. */
  sockets: number;
  /** The pid to resume after (the walk ran out of time), or 0: it reached the last process. */
  resumeAfter: number;
}

/** Where a {@link scanSocketFds} starts and when it stops. */
export interface FdScanOptions {
  /** Processes with a pid up to this one are skipped (0: from the first). */
  after?: number;
  /** `performance.now()` past which no further process is started (default: none). */
  deadline?: number;
  /** procfs root (default `/proc`). */
  proc?: string;
}

const encoder = new TextEncoder();
const pathBuf = new Uint8Array(new ArrayBuffer(512));
const linkBuf = new Uint8Array(new ArrayBuffer(256));
/** "socket:[" */
const PREFIX = [0x73, 0x6f, 0x63, 0x6b, 0x65, 0x74, 0x3a, 0x5b];

/** The inode of a `socket:[N]` link of `n` bytes in {@link linkBuf}, or -1. */
function socketInode(n: number): number {
  if (n < PREFIX.length + 2 || linkBuf[n - 1] !== 0x5d) return -1;
  for (let i = 0; i < PREFIX.length; i++) if (linkBuf[i] !== PREFIX[i]) return -1;
  let v = 0;
  for (let i = PREFIX.length; i < n - 1; i++) {
    const d = linkBuf[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * Calls `onSocket(inode, pid)` for every socket fd of the processes of `/proc`, in ascending pid
 * order, from after `o.after` until `o.deadline` (checked between processes; one process at
 * least). Processes and fds
 * that vanish or refuse meanwhile are skipped: the walk never fails for them.
 *
 * @example
 * ```ts
 * const owners = new Map<number, number>();
 * scanSocketFds((inode, pid) => owners.has(inode) || owners.set(inode, pid));
 * ```
 */
export function scanSocketFds(
  onSocket: (inode: number, pid: number) => void,
  o: FdScanOptions = {},
): FdScanStats {
  const proc = o.proc ?? "/proc";
  const after = o.after ?? 0;
  const deadline = o.deadline ?? Infinity;
  const stats: FdScanStats = { processes: 0, fds: 0, sockets: 0, resumeAfter: 0 };
  const s = libc();
  const bufLen = BigInt(linkBuf.length);
  const pids = listDir(proc).map(Number).filter((p) => Number.isInteger(p) && p > after)
    .sort((a, b) => a - b);
  let last = 0; // the last process done: at least one per call
  for (const pid of pids) {
    if (last !== 0 && performance.now() > deadline) {
      stats.resumeAfter = last;
      break;
    }
    last = pid;
    const dir = `${proc}/${pid}/fd`;
    let fds: string[];
    try {
      fds = listDir(dir);
    } catch {
      continue; // gone, or not ours to read
    }
    stats.processes++;
    for (const fd of fds) {
      const w = encoder.encodeInto(`${dir}/${fd}`, pathBuf).written;
      if (w >= pathBuf.length) continue;
      pathBuf[w] = 0;
      const n = s.readlink(pathBuf, linkBuf, bufLen);
      stats.fds++;
      if (n <= 0) continue; // closed meanwhile
      const inode = socketInode(n);
      if (inode < 0) continue;
      stats.sockets++;
      onSocket(inode, pid);
    }
  }
  return stats;
}

/**
 * The command name of `pid` (`/proc/<pid>/comm`, as ss -p prints it) as ASCII bytes, at most 64
 * (other bytes become `?`); empty when the process is gone.
 */
export function readComm(pid: number, proc = "/proc"): Uint8Array {
  let text: string;
  try {
    text = readSmallFile(`${proc}/${pid}/comm`);
  } catch {
    return new Uint8Array(0);
  }
  if (text.endsWith("\n")) text = text.slice(0, -1);
  const out = new Uint8Array(Math.min(text.length, 64));
  for (let i = 0; i < out.length; i++) {
    const c = text.charCodeAt(i);
    out[i] = c >= 0x20 && c < 0x7f ? c : 0x3f;
  }
  return out;
}
