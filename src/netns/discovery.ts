/**
 * Network namespace discovery: the union of the namespaces of every process (`/proc/<pid>/ns/net`,
 * keyed by inode) and the bind mounts in `/run/netns` and `/run/docker/netns` (which exist even
 * with no process inside).
 *
 * @module
 */
import { listDir, netnsInode, readSmallFile } from "../../ffi/libc.ts";

/** A live namespace. */
export interface NsInfo {
  /** nsfs inode: the namespace's identity. */
  inode: bigint;
  /** Name stamped on records: bind-mount name, container id, `netns:[inode]`, or `default`. */
  name: string;
  /** File to open to enter it (a bind mount, or `/proc/<pid>/ns/net`). */
  path: string;
  /** A process inside it, if any. */
  pid?: number;
}

/** Where to look. */
export interface DiscoveryOptions {
  /** procfs root; default `/proc`. */
  proc?: string;
  /** Bind-mount directories; default `/run/netns` and `/run/docker/netns`. */
  bindDirs?: readonly string[];
  /** Inode of the daemon's own namespace (named `default`). */
  selfInode: bigint;
}

/** Counters of one discovery pass. */
export interface DiscoveryStats {
  /** Processes whose namespace could not be read (permissions, exited). */
  skipped: number;
  /** Namespaces found through /proc. */
  foundProc: number;
  /** Namespaces found only through a bind mount. */
  foundBindMount: number;
}

const CONTAINER_ID = /[0-9a-f]{64}/;

function statIno(path: string): bigint | undefined {
  try {
    const st = Deno.statSync(path);
    return st.ino === null ? undefined : BigInt(st.ino);
  } catch {
    return undefined;
  }
}

/**
 * Finds every live network namespace.
 *
 * @example
 * ```ts
 * const self = netnsInode("/proc/self/ns/net");
 * for (const ns of discover({ selfInode: self }).namespaces.values()) console.log(ns.name);
 * ```
 */
export function discover(
  opts: DiscoveryOptions,
): { namespaces: Map<bigint, NsInfo>; stats: DiscoveryStats } {
  const proc = opts.proc ?? "/proc";
  const stats: DiscoveryStats = { skipped: 0, foundProc: 0, foundBindMount: 0 };
  const found = new Map<bigint, NsInfo>();
  // Bind mounts first: their file name is the preferred name.
  const bindNames = new Map<bigint, { name: string; path: string }>();
  for (const dir of opts.bindDirs ?? ["/run/netns", "/run/docker/netns"]) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e.isDirectory) continue;
      const path = `${dir}/${e.name}`;
      const ino = statIno(path);
      if (ino !== undefined && !bindNames.has(ino)) bindNames.set(ino, { name: e.name, path });
    }
  }
  let pids: string[] = [];
  try {
    pids = listDir(proc).filter((n) => /^\d+$/.test(n));
  } catch {
    stats.skipped++;
  }
  for (const p of pids) {
    let ino: bigint;
    try {
      ino = netnsInode(`${proc}/${p}/ns/net`);
    } catch {
      stats.skipped++;
      continue;
    }
    if (found.has(ino)) continue;
    const pid = Number(p);
    const bind = bindNames.get(ino);
    let name: string;
    if (ino === opts.selfInode) name = "default";
    else if (bind) name = bind.name;
    else name = containerId(`${proc}/${p}/cgroup`) ?? `netns:[${ino}]`;
    found.set(ino, { inode: ino, name, path: bind?.path ?? `${proc}/${p}/ns/net`, pid });
    stats.foundProc++;
  }
  for (const [ino, bind] of bindNames) {
    if (found.has(ino)) continue;
    found.set(ino, {
      inode: ino,
      name: ino === opts.selfInode ? "default" : bind.name,
      path: bind.path,
    });
    stats.foundBindMount++;
  }
  return { namespaces: found, stats };
}

function containerId(cgroupFile: string): string | undefined {
  try {
    return CONTAINER_ID.exec(readSmallFile(cgroupFile))?.[0];
  } catch {
    return undefined;
  }
}
