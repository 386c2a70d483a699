/**
 * The namespaces being polled: one netlink socket per namespace, created by entering it
 * (`setns` on the JS thread) and kept for the namespace's life. Reconcile adds new namespaces and
 * closes the sockets of vanished ones; failing to enter one namespace never stops the others.
 *
 * @module
 */
import { NetlinkSocket } from "../../ffi/netlink_socket.ts";
import { openNetlinkSocketIn } from "../../ffi/netns.ts";
import type { Counters, Logger } from "../daemon/log.ts";
import { discover, type DiscoveryOptions, type NsInfo } from "./discovery.ts";

/** A namespace being polled. */
export interface NsState {
  info: NsInfo;
  socket: NetlinkSocket;
}

/** Options of {@link NamespaceRegistry}. */
export interface RegistryOptions extends DiscoveryOptions {
  /** SO_RCVTIMEO of each socket (ms). */
  rcvTimeoutMs: number;
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

  /** Discovers namespaces, opens sockets for new ones, closes those that vanished. */
  reconcile(): { added: number; removed: number } {
    const c = this.opts.counters;
    c.inc("reconcile", "start");
    const { namespaces, stats } = discover(this.opts);
    c.inc("discoverNamespaces", "foundProc", "counter", stats.foundProc);
    c.inc("discoverNamespaces", "foundBindMount", "counter", stats.foundBindMount);
    c.inc("discoverNamespaces", "skipped", "counter", stats.skipped);
    let removed = 0;
    for (const [ino, st] of this.states) {
      if (namespaces.has(ino)) {
        // A bind mount may appear after the process was first seen: keep the best name.
        st.info.name = namespaces.get(ino)!.name;
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
        const socket = ino === this.opts.selfInode
          ? NetlinkSocket.open({ rcvTimeoutMs: this.opts.rcvTimeoutMs })
          : openNetlinkSocketIn(info.path, { rcvTimeoutMs: this.opts.rcvTimeoutMs });
        this.states.set(ino, { info, socket });
        this.failed.delete(ino);
        added++;
        c.inc("add", "store");
        this.opts.log.debug(`namespace ${info.name} (${ino}) added, fd ${socket.fd}`);
      } catch (err) {
        c.inc("netNamespaceInstance", "open", "error");
        // Log once per namespace; retried at every reconcile.
        if (!this.failed.has(ino)) {
          this.failed.add(ino);
          this.opts.log.error(
            `cannot enter namespace ${info.name} (${info.path}): ${(err as Error).message}`,
          );
        }
      }
    }
    c.inc("reconcile", "complete");
    return { added, removed };
  }

  private close(st: NsState): void {
    try {
      st.socket.close();
    } catch (err) {
      this.opts.counters.inc("netNamespaceInstance", "closeSocketFD", "error");
      this.opts.log.error(`closing the socket of ${st.info.name}: ${(err as Error).message}`);
    }
  }

  /** Closes every socket. */
  [Symbol.dispose](): void {
    for (const st of this.states.values()) this.close(st);
    this.states.clear();
  }
}
