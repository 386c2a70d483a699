/**
 * Discovery alone, pass after pass (the `ns` tool): which namespaces appeared and vanished since
 * the last pass, and where each was found, without entering any of them.
 *
 * @module
 */
import { discover, type DiscoveryOptions, type NsInfo } from "./discovery.ts";

/** Where a namespace was found: a process's `/proc/<pid>/ns/net`, or only a bind mount. */
export type NsSource = "proc" | "bindmount";

/** A namespace being watched. */
export interface WatchedNs extends NsInfo {
  source: NsSource;
}

/** One pass: what changed, and the totals of the watcher so far. */
export interface WatchPass {
  added: WatchedNs[];
  deleted: WatchedNs[];
  /** Namespaces found in this pass, by source. */
  found: Record<NsSource, number>;
  /** Processes whose namespace could not be read in this pass. */
  skipped: number;
  /** Duration of the pass, ms. */
  ms: number;
}

/** Keeps the namespaces of the last pass and diffs each new pass against them. */
export class NamespaceWatcher {
  /** Namespaces of the last pass, by inode. */
  readonly current: Map<bigint, WatchedNs> = new Map();
  /** Totals since the start, by source. */
  readonly totals = {
    added: { proc: 0, bindmount: 0 },
    deleted: { proc: 0, bindmount: 0 },
    passes: 0,
    skipped: 0,
  };

  /** @param opts where to look (see discover) */
  constructor(private readonly opts: DiscoveryOptions) {}

  /** Runs one discovery pass. */
  pass(): WatchPass {
    const t0 = performance.now();
    const { namespaces, stats } = discover(this.opts);
    const added: WatchedNs[] = [];
    const deleted: WatchedNs[] = [];
    for (const [ino, old] of this.current) {
      if (namespaces.has(ino)) continue;
      this.current.delete(ino);
      deleted.push(old);
      this.totals.deleted[old.source]++;
    }
    for (const [ino, info] of namespaces) {
      const source: NsSource = info.pid === undefined ? "bindmount" : "proc";
      const known = this.current.get(ino);
      const ns = { ...info, source };
      this.current.set(ino, ns);
      if (known) continue;
      added.push(ns);
      this.totals.added[source]++;
    }
    this.totals.passes++;
    this.totals.skipped += stats.skipped;
    return {
      added,
      deleted,
      found: { proc: stats.foundProc, bindmount: stats.foundBindMount },
      skipped: stats.skipped,
      ms: performance.now() - t0,
    };
  }
}
