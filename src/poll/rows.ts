/**
 * Which sockets of a poll become records, and what the daemon adds to them: `--changesOnly`
 * (per-namespace {@link SocketChanges}, close records) and `--socketOwners` ({@link SocketOwners}).
 * The same object serves the poller's own encoding and the pipeline's worker, so both write the
 * same rows.
 *
 * @module
 */
import { INET_DIAG_MSG_LEN } from "../netlink/constants.ts";
import { SocketView } from "../netlink/socket_view.ts";
import type { Counters } from "../util/log.ts";
import { RecordExtra } from "../record/extra.ts";
import { SocketChanges } from "./changes.ts";
import { SocketOwners } from "./socket_owners.ts";

/** What a {@link RowFilter} does. */
export interface RowOptions {
  /** Write only new and changed sockets, and close records. */
  readonly changesOnly: boolean;
  /** Fill each record's owning process. */
  readonly socketOwners: boolean;
  /** How long one /proc walk for owners may run (ms; default 100). */
  readonly socketOwnersBudgetMs?: number;
}

/** Counts of a {@link RowFilter}, since it was made. */
export interface RowStats {
  /** Sockets left out because nothing changed. */
  unchanged: number;
  /** Close records written. */
  closed: number;
}

/**
 * Decides, socket by socket, whether a record is written, and fills its additions.
 *
 * @example
 * ```ts
 * const rows = new RowFilter({ changesOnly: true, socketOwners: false }, (v, x) => env.add(v, stamp, x));
 * rows.beginPoll(false);
 * rows.beginNamespace(key);
 * // for each socket: if (rows.wanted(view)) env.add(view, stamp, rows.extraFor(view));
 * rows.endNamespace(true); // close records go to the callback
 * ```
 */
export class RowFilter {
  readonly stats: RowStats = { unchanged: 0, closed: 0 };
  /** The owner cache, with `socketOwners`. */
  readonly owners: SocketOwners | undefined;
  private readonly extra = new RecordExtra();
  private readonly tables = new Map<number, SocketChanges>();
  private table: SocketChanges | undefined;
  private snapshot = false;
  /** Set by a rolled-back dump: every socket of the namespace is written. */
  private forced = false;
  /** A closed socket's last inet_diag_msg, copied out of its table: the encoder reads it. */
  private readonly ghost = new SocketView();
  private readonly ghostBuf = new Uint8Array(INET_DIAG_MSG_LEN);
  private readonly ghostDv = new DataView(this.ghostBuf.buffer);
  private readonly reported: number[] = [];
  private untrackedGone = 0;
  private readonly onSwept = (hdr: Uint8Array, off: number) => {
    const g = this.ghost;
    const b = this.ghostBuf;
    for (let i = 0; i < INET_DIAG_MSG_LEN; i++) b[i] = hdr[off + i]; // no subarray per socket
    g.u8 = b;
    g.dv = this.ghostDv;
    g.msg = 0;
    g.end = INET_DIAG_MSG_LEN;
    g.datagram++; // new bytes in the same buffer: the encoder copies them in again
    const x = this.extra;
    x.clear();
    this.owners?.fill(g.inode, x, false);
    x.closed = true;
    this.stats.closed++;
    this.emit(g, x);
  };

  /**
   * @param opts what to do
   * @param emit writes a close record (the socket's last inet_diag_msg, `extra.closed` set)
   * @param owners the owner cache to use (default: a new one scanning /proc)
   */
  constructor(
    readonly opts: RowOptions,
    private readonly emit: (view: SocketView, extra: RecordExtra) => void,
    owners?: SocketOwners,
  ) {
    this.owners = opts.socketOwners
      ? owners ?? new SocketOwners(undefined, undefined, opts.socketOwnersBudgetMs)
      : undefined;
  }

  /** A new poll; `snapshot`: write every socket of it. */
  beginPoll(snapshot: boolean): void {
    this.snapshot = snapshot;
    this.owners?.beginPoll();
  }

  /** The dump of the namespace `key` (its inode) starts. */
  beginNamespace(key: number): void {
    this.forced = false;
    if (!this.opts.changesOnly) return;
    let t = this.tables.get(key);
    if (!t) this.tables.set(key, t = new SocketChanges());
    t.begin();
    this.table = t;
  }

  /** The dump restarts (rows since its checkpoint were dropped): write every socket from now. */
  rollback(): void {
    this.forced = true;
  }

  /** Whether the socket in `view` gets a record (always, without `changesOnly`). */
  wanted(view: SocketView): boolean {
    const t = this.table;
    if (!t) return true;
    if (t.changed(view) || this.snapshot || this.forced) return true;
    this.stats.unchanged++;
    return false;
  }

  /** The socket just found {@link RowFilter.wanted} gets no record after all (sampling). */
  leftOut(): void {
    this.table?.leftOut();
  }

  /**
   * The additions to the record of `view`, or undefined when there are none. A record written
   * before its owner is known (the walk was cut short) is due again in the next poll.
   */
  extraFor(view: SocketView): RecordExtra | undefined {
    const o = this.owners;
    if (!o) return undefined;
    const x = this.extra;
    x.clear();
    if (!o.fill(view.inode, x) && o.pendingLast) this.table?.leftOut();
    return x;
  }

  /**
   * The namespace's dump ended; when it succeeded (`ok`), each socket seen in its previous dump
   * and not in this one is written once more, flagged closed.
   */
  endNamespace(ok: boolean): void {
    const t = this.table;
    this.table = undefined;
    this.forced = false;
    if (t && ok) t.sweep(this.onSwept);
  }

  /** Forgets the namespace `key` (it vanished). */
  drop(key: number): void {
    this.untrackedGone += this.tables.get(key)?.untracked ?? 0;
    this.tables.delete(key);
  }

  /**
   * Adds what happened since the last call to `c`: `Poller/changesOnly/unchanged`, `…/closed`,
   * `…/untracked`, and `Poller/socketOwners/scans`, `…/cycles`, `…/fds`, `…/ms`.
   */
  account(c: Counters): void {
    const r = this.reported;
    const o = this.owners?.stats;
    let untracked = this.untrackedGone;
    for (const t of this.tables.values()) untracked += t.untracked;
    const now = [
      this.stats.unchanged,
      this.stats.closed,
      untracked,
      o?.scans ?? 0,
      o?.cycles ?? 0,
      o?.fds ?? 0,
      Math.round(o?.ms ?? 0),
    ];
    const names = [
      ["changesOnly", "unchanged"],
      ["changesOnly", "closed"],
      ["changesOnly", "untracked"],
      ["socketOwners", "scans"],
      ["socketOwners", "cycles"],
      ["socketOwners", "fds"],
      ["socketOwners", "ms"],
    ] as const;
    names.forEach(([v, t], i) => {
      const d = now[i] - (r[i] ?? 0);
      if (d > 0) c.inc("Poller", v, t, d);
      r[i] = now[i];
    });
  }

  /** Namespaces tracked, and sockets tracked in all of them. */
  get tracked(): { namespaces: number; sockets: number } {
    let sockets = 0;
    for (const t of this.tables.values()) sockets += t.count;
    return { namespaces: this.tables.size, sockets };
  }
}
