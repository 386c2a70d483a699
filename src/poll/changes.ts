/**
 * `--changesOnly`: what one namespace's sockets looked like when last written, keyed by socket
 * cookie, so that a poll writes only the sockets whose state or counters changed, and one record
 * flagged closed for each socket seen before and gone now.
 *
 * "Changed" is tcp-info's rule: a hash of the raw bytes the kernel sent (the decoded attributes,
 * and the header's state, timer, retransmits and queues) differs. tcp_info's `last_data_sent`,
 * `last_ack_sent`, `last_data_recv` and `last_ack_recv` (ms since the last event, which grow on
 * an idle socket) and the header's `idiag_expires` (a countdown) are left out.
 *
 * Typed arrays only: after the table has grown to the namespace's size, a poll allocates nothing.
 * Per tracked socket it keeps the cookie, the hash, the poll it was last seen in, and a copy of
 * its 72-byte inet_diag_msg (what its close record is written from): about 100 bytes.
 *
 * @module
 */
import { INET_DIAG_INFO, INET_DIAG_MSG_LEN, MAX_ATTR_TYPE } from "../netlink/constants.ts";
import type { SocketView } from "../netlink/socket_view.ts";

/** Sockets tracked per namespace at most; more are written every poll and never closed. */
export const MAX_TRACKED = 1 << 19;

/** tcp_info bytes [44, 60): last_data_sent, last_ack_sent, last_data_recv, last_ack_recv. */
const LAST_FROM = 44;
const LAST_TO = 60;

/**
 * The hash of what `view`'s socket looks like, times and countdowns left out (see the module
 * documentation): Murmur3's block mix over the header's first word and its queues, then each
 * attribute's type and length and its payload. 30 bits (a small integer: a larger one returned
 * from a call is boxed, an allocation per socket). One function with locals only, for the same
 * reason.
 *
 * @example
 * ```ts
 * contentHash(view) === contentHash(sameSocketNextPoll); // true while it is idle
 * ```
 */
export function contentHash(view: SocketView): number {
  const dv = view.dv;
  const u8 = view.u8;
  const off = view.attrOff;
  const len = view.attrLen;
  let h = 0x9747b28c | 0;
  // t = 0: the header [0, 64) without [4, 56) (ports, addresses, interface, cookie, expires).
  for (let t = 0; t < MAX_ATTR_TYPE; t++) {
    const b = t === 0 ? view.msg : off[t];
    if (b < 0) continue;
    const n = t === 0 ? 64 : len[t];
    const skipFrom = t === 0 ? b + 4 : t === INET_DIAG_INFO ? b + LAST_FROM : -1;
    const skipTo = t === 0 ? b + 56 : t === INET_DIAG_INFO ? b + LAST_TO : -1;
    const end = b + n;
    let p = b - 1; // first the word (type, length)
    while (p < end) {
      let k: number;
      if (p < b) {
        k = (t << 16) | n;
        p = b;
      } else if (p + 4 <= end) {
        if (p >= skipFrom && p < skipTo) {
          p += 4;
          continue;
        }
        k = dv.getInt32(p, true);
        p += 4;
      } else {
        k = u8[p++];
      }
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h ^= Math.imul(k, 0x1b873593);
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
  }
  return (h ^ (h >>> 16)) & 0x3fffffff;
}

/** Slot of a cookie in a table of `mask + 1` slots. */
function home(lo: number, hi: number, mask: number): number {
  let x = lo ^ Math.imul(hi, 0x9e3779b1);
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  return (x ^ (x >>> 16)) & mask;
}

/**
 * One namespace's sockets as last written. Use per poll: {@link SocketChanges.begin}, then
 * {@link SocketChanges.changed} for every socket of the dump, then {@link SocketChanges.sweep}
 * once the dump succeeded.
 */
export class SocketChanges {
  /** Sockets tracked. */
  count = 0;
  /** Sockets that could not be tracked ({@link MAX_TRACKED}), summed over the polls. */
  untracked = 0;
  private epoch = 0;
  // Entries, dense, by index.
  private keyLo = new Uint32Array(0);
  private keyHi = new Uint32Array(0);
  private hash = new Int32Array(0);
  private seen = new Int32Array(0);
  /** 1: written with a hash that is not the socket's (it was left out): changed next time. */
  private stale = new Uint8Array(0);
  /** Each entry's inet_diag_msg of its last sighting, 72 bytes apiece. */
  private hdr = new Uint8Array(0);
  private hdv = new DataView(this.hdr.buffer);
  // Open addressing over entry indexes (-1 = empty), at most half full.
  private slots = new Int32Array(0);
  private mask = -1;
  private last = -1;
  private lastWasKnown = false;
  private lastHash = 0;

  /** @param limit sockets tracked at most */
  constructor(private readonly limit = MAX_TRACKED) {
    this.resize(64);
  }

  /** Starts a poll of the namespace. */
  begin(): void {
    this.epoch++;
    this.last = -1;
  }

  private find(lo: number, hi: number): number {
    const mask = this.mask;
    for (let s = home(lo, hi, mask);; s = (s + 1) & mask) {
      const e = this.slots[s];
      if (e < 0 || (this.keyLo[e] === lo && this.keyHi[e] === hi)) return s;
    }
  }

  /** Entry and slot room for `entries` (a power of two), the entries kept. */
  private resize(entries: number): void {
    const grow = <T extends Uint32Array | Int32Array | Uint8Array>(
      a: T,
      make: (n: number) => T,
    ) => {
      const b = make(entries);
      b.set(a.subarray(0, this.count));
      return b;
    };
    this.keyLo = grow(this.keyLo, (n) => new Uint32Array(n));
    this.keyHi = grow(this.keyHi, (n) => new Uint32Array(n));
    this.hash = grow(this.hash, (n) => new Int32Array(n));
    this.seen = grow(this.seen, (n) => new Int32Array(n));
    this.stale = grow(this.stale, (n) => new Uint8Array(n));
    const hdr = new Uint8Array(entries * INET_DIAG_MSG_LEN);
    hdr.set(this.hdr.subarray(0, this.count * INET_DIAG_MSG_LEN));
    this.hdr = hdr;
    this.hdv = new DataView(hdr.buffer);
    this.slots = new Int32Array(entries * 2).fill(-1);
    this.mask = entries * 2 - 1;
    for (let e = 0; e < this.count; e++) this.slots[this.find(this.keyLo[e], this.keyHi[e])] = e;
  }

  /**
   * Whether the socket in `view` is new or changed since it was last written; it is remembered
   * as written now (see {@link SocketChanges.leftOut}) and as seen in this poll. A socket that
   * cannot be tracked (the table is full) is always changed.
   */
  changed(view: SocketView): boolean {
    const m = view.msg;
    const lo = view.dv.getUint32(m + 44, true);
    const hi = view.dv.getUint32(m + 48, true);
    const h = contentHash(view);
    let s = this.find(lo, hi);
    let e = this.slots[s];
    const known = e >= 0;
    if (!known) {
      if (this.count === this.limit) {
        this.untracked++;
        this.last = -1;
        return true;
      }
      if (this.count === this.keyLo.length) {
        this.resize(this.keyLo.length * 2);
        s = this.find(lo, hi);
      }
      e = this.count++;
      this.slots[s] = e;
      this.keyLo[e] = lo;
      this.keyHi[e] = hi;
    }
    const was = this.hash[e];
    const stale = this.stale[e];
    this.last = e;
    this.lastWasKnown = known && stale === 0;
    this.lastHash = was;
    this.hash[e] = h;
    this.stale[e] = 0;
    this.seen[e] = this.epoch;
    const from = view.dv;
    const to = this.hdv;
    const at = e * INET_DIAG_MSG_LEN;
    for (let i = 0; i < INET_DIAG_MSG_LEN; i += 4) to.setUint32(at + i, from.getUint32(m + i));
    return !known || stale !== 0 || was !== h;
  }

  /**
   * The socket last given to {@link SocketChanges.changed} was not written, or not in full (its
   * owner was not known yet): changed next time.
   */
  leftOut(): void {
    const e = this.last;
    if (e < 0) return;
    if (this.lastWasKnown) this.hash[e] = this.lastHash;
    else this.stale[e] = 1;
  }

  /**
   * Ends a successful dump of the namespace: each socket tracked but not seen in it is passed to
   * `onClosed` (its last inet_diag_msg at `off` in `hdr`) and forgotten. Returns how many.
   */
  sweep(onClosed: (hdr: Uint8Array, off: number) => void): number {
    let closed = 0;
    for (let e = this.count - 1; e >= 0; e--) {
      if (this.seen[e] === this.epoch) continue;
      onClosed(this.hdr, e * INET_DIAG_MSG_LEN);
      this.remove(e);
      closed++;
    }
    return closed;
  }

  /** Removes entry `e` (the last entry moves into its place). */
  private remove(e: number): void {
    this.unslot(this.find(this.keyLo[e], this.keyHi[e]));
    const last = --this.count;
    if (e === last) return;
    this.keyLo[e] = this.keyLo[last];
    this.keyHi[e] = this.keyHi[last];
    this.hash[e] = this.hash[last];
    this.seen[e] = this.seen[last];
    this.stale[e] = this.stale[last];
    this.hdr.copyWithin(
      e * INET_DIAG_MSG_LEN,
      last * INET_DIAG_MSG_LEN,
      (last + 1) * INET_DIAG_MSG_LEN,
    );
    this.slots[this.find(this.keyLo[e], this.keyHi[e])] = e;
  }

  /** Empties slot `i`, shifting back the entries of its probe run (no tombstones). */
  private unslot(i: number): void {
    const mask = this.mask;
    for (let j = (i + 1) & mask;; j = (j + 1) & mask) {
      const e = this.slots[j];
      if (e < 0) break;
      const k = home(this.keyLo[e], this.keyHi[e], mask);
      // The entry at j stays when its home lies cyclically in (i, j].
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (stays) continue;
      this.slots[i] = e;
      i = j;
    }
    this.slots[i] = -1;
  }
}
