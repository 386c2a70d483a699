/**
 * The namespaces being polled: one netlink socket per namespace, created by entering it
 * (`setns` on the JS thread) and kept for the namespace's life. Reconcile adds new namespaces and
 * closes the sockets of vanished ones; failing to enter one namespace never stops the others,
 * but failing to come back from one (the thread stuck in the wrong namespace) is thrown.
 *
 * @module
 */
import { readSmallFile, sysClose } from "../../ffi/libc.ts";
import { NetlinkSocket } from "../../ffi/netlink_socket.ts";
import { type NetnsHome, openNetnsFd } from "../../ffi/netns.ts";
import { errorMessage, isFatal } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import { discover, type DiscoveryOptions, type NsInfo } from "./discovery.ts";
import type { NsidResolver } from "./nsid.ts";

/** A namespace being polled. */
export interface NsState {
  /** What discovery found. */
  info: NsInfo;
  /** Its inet_diag socket (replaced by {@link NamespaceRegistry.reopen}). */
  socket: NetlinkSocket;
  /**
   * Its `net.ipv4.tcp_ehash_entries`: negative when it has no TCP hash table of its own and
   * shares the host's (every dump of it then walks every namespace's sockets); undefined where
   * the kernel does not say (before 5.19).
   */
  ehashEntries?: number;
  /** The id the daemon's namespace gives it (with a resolver, when one is assigned). */
  nsid?: number;
}

const EHASH = "/proc/sys/net/ipv4/tcp_ehash_entries";

function readEhash(): number | undefined {
  try {
    const n = Number(readSmallFile(EHASH).trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined; // before Linux 5.19
  }
}

/** Options of {@link NamespaceRegistry}. */
export interface RegistryOptions extends DiscoveryOptions {
  /** The thread's home namespace: where the thread returns after creating each socket. */
  home: NetnsHome;
  /** SO_RCVTIMEO of each socket (ms). */
  rcvTimeoutMs: number;
  /** Asks each namespace's id at every reconcile (`-populateNsid`). */
  nsid?: NsidResolver;
  log: Logger;
  counters: Counters;
}

/** Tracks namespaces and their sockets. */
export class NamespaceRegistry implements Disposable {
  /** Namespaces by inode. */
  readonly states: Map<bigint, NsState> = new Map();
  private readonly failed = new Set<bigint>();

  /** @param opts discovery and socket options */
  constructor(private readonly opts: RegistryOptions) {}

  private open(info: NsInfo): NetlinkSocket {
    const o = { rcvTimeoutMs: this.opts.rcvTimeoutMs };
    // The daemon's own namespace needs no setns (and no process of it to stay alive).
    return info.inode === this.opts.selfInode
      ? NetlinkSocket.open(o)
      : this.opts.home.openNetlinkSocketIn(info.path, o);
  }

  /**
   * Discovers namespaces, opens sockets for new ones, closes those that vanished. Throws only
   * what is fatal (the thread could not return home).
   */
  reconcile(): { added: number; removed: number } {
    const c = this.opts.counters;
    c.inc("reconcile", "start");
    const { namespaces, stats } = discover(this.opts);
    c.inc("discoverNamespaces", "foundProc", "counter", stats.foundProc);
    c.inc("discoverNamespaces", "foundBindMount", "counter", stats.foundBindMount);
    c.inc("discoverNamespaces", "skipped", "counter", stats.skipped);
    let removed = 0;
    for (const [ino, st] of this.states) {
      const now = namespaces.get(ino);
      if (now) {
        // A bind mount may appear after the process was first seen: keep the best name.
        st.info.name = now.name;
        continue;
      }
      this.close(st);
      this.states.delete(ino);
      removed++;
      c.inc("delete", "delete", "counter");
      this.opts.log.debug(`namespace ${st.info.name} gone`);
    }
    for (const ino of this.failed) if (!namespaces.has(ino)) this.failed.delete(ino);
    let added = 0;
    for (const [ino, info] of namespaces) {
      if (this.states.has(ino)) continue;
      try {
        const socket = this.open(info);
        const ehashEntries = this.ehashOf(info);
        this.states.set(ino, {
          info,
          socket,
          ...(ehashEntries === undefined ? {} : { ehashEntries }),
        });
        this.failed.delete(ino);
        added++;
        c.inc("add", "store");
        this.opts.log.debug(`namespace ${info.name} (${ino}) added, fd ${socket.fd}`);
      } catch (err) {
        if (isFatal(err)) throw err;
        c.inc("netNamespaceInstance", "open", "error");
        // Log once per namespace; retried at every reconcile.
        if (!this.failed.has(ino)) {
          this.failed.add(ino);
          this.opts.log.error(
            `Cannot enter namespace ${info.name} (${info.path}): ${errorMessage(err)}`,
          );
        }
      }
    }
    if (this.opts.nsid) this.refreshNsids(this.opts.nsid);
    c.inc("reconcile", "complete");
    return { added, removed };
  }

  /** The namespace's tcp_ehash_entries, read inside it (undefined where unknown). */
  private ehashOf(info: NsInfo): number | undefined {
    if (info.inode === this.opts.selfInode) return readEhash();
    let fd: number;
    try {
      fd = openNetnsFd(info.path);
    } catch {
      return undefined;
    }
    try {
      return this.opts.home.run(fd, readEhash, info.path);
    } finally {
      sysClose(fd);
    }
  }

  /** Asks every namespace's id again (an id can be assigned at any time). */
  private refreshNsids(resolver: NsidResolver): void {
    for (const st of this.states.values()) {
      try {
        const id = resolver.nsidOf(st.info.path);
        if (id === undefined) delete st.nsid;
        else st.nsid = id;
      } catch (err) {
        this.opts.counters.inc("netNamespaceInstance", "nsid", "error");
        this.opts.log.debug(`nsid of ${st.info.name}: ${errorMessage(err)}`);
      }
    }
  }

  /** How many tracked namespaces share the host's TCP hash table, of how many. */
  sharedTables(): { shared: number; total: number } {
    let shared = 0;
    for (const st of this.states.values()) if ((st.ehashEntries ?? 0) < 0) shared++;
    return { shared, total: this.states.size };
  }

  /**
   * Replaces a namespace's socket with a fresh one (after a dump failed midway, the old socket
   * may still hold the rest of that dump). When the namespace cannot be entered any more it is
   * forgotten (the next reconcile finds it again if it still exists). Throws only what is fatal.
   */
  reopen(st: NsState): void {
    this.close(st);
    this.opts.counters.inc("netNamespaceInstance", "reopen");
    try {
      st.socket = this.open(st.info);
    } catch (err) {
      if (isFatal(err)) throw err;
      this.states.delete(st.info.inode);
      this.opts.counters.inc("netNamespaceInstance", "open", "error");
      this.opts.log.error(
        `Cannot reopen the socket of namespace ${st.info.name}: ${errorMessage(err)}`,
      );
    }
  }

  private close(st: NsState): void {
    try {
      st.socket.close();
    } catch (err) {
      this.opts.counters.inc("netNamespaceInstance", "closeSocketFD", "error");
      this.opts.log.error(`Closing the socket of ${st.info.name}: ${errorMessage(err)}`);
    }
  }

  /** Closes every socket. */
  [Symbol.dispose](): void {
    for (const st of this.states.values()) this.close(st);
    this.states.clear();
  }
}
