/**
 * Delivery: how a flush reaches its destination. Destinations that write in place (null,
 * stdout, stderr, file) take it at once; every other one sits behind one {@link DeliveryQueue}:
 * a flush is enqueued and the poll goes on; envelopes go out in order, one at a time, and leave
 * the queue only when the destination acknowledged them (its `send` resolved); a failed send is
 * retried with exponential backoff and jitter for as long as the queue has room (an envelope
 * the peer refused for good, a RefusedError, is dropped after a few attempts, counted). The queue is
 * bounded in bytes; when it is full the oldest envelopes are dropped (or the newest, or the next
 * poll waits), or, with a {@link Spool}, they go to disk. The flushes of the poll that runs are
 * always taken, over the bound if one poll is larger than it. Every envelope is accounted for
 * exactly: acknowledged, dropped (by reason, in rows, bytes and envelopes), spooled, or queued.
 *
 * The queue keeps a flush without copying it where it can: on loan from the poller's envelope
 * writer (the bytes stay where they were written until the queue releases them) for a
 * destination that writes views of shared memory to a socket; else a copy in a reused buffer.
 * At 100k sockets the copy was the whole of what delivery cost the daemon (12–15 ms of 34 MB a
 * poll, into memory the dump had just pushed out of the caches).
 *
 * @module
 */
import { Backoff } from "../util/backoff.ts";
import { errorMessage, isRefused } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import {
  type Destination,
  type Framing,
  type FullPolicy,
  isSync,
  type SyncDestination,
} from "./destination.ts";
import { BufferPool } from "./buffer_pool.ts";
import type { Lease } from "../util/lease.ts";
import type { Spool } from "./spool.ts";

export { FULL_POLICIES, type FullPolicy } from "./destination.ts";

/** Why envelopes were dropped. */
export const DROP_REASONS = ["queue_full", "spool_full", "rejected", "shutdown"] as const;

/** A {@link DROP_REASONS} value. */
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * One line accounting for every row handed to the delivery queue since start: acknowledged,
 * dropped (by reason), spooled, or still waiting.
 */
export function deliveryAccount(scheme: string, c: Counters): string {
  const rows = (variable: string) => c.get("destQueue", variable, "rows");
  const reasons = DROP_REASONS.map((r) => [r, rows(`drop_${r}`)] as const).filter(([, n]) => n);
  const dropped = reasons.reduce((sum, [, n]) => sum + n, 0);
  return `delivery to ${scheme}: ${rows("enqueued")} rows handed over, ${
    rows("acked")
  } acknowledged, ${dropped} dropped${
    reasons.length ? ` (${reasons.map(([r, n]) => `${r} ${n}`).join(", ")})` : ""
  }, ${rows("spooled")} spooled`;
}

/** What is waiting to be delivered. */
export interface Backlog {
  envelopes: number;
  rows: number;
  bytes: number;
  /** Age of the oldest envelope in memory, in ms (0 when none). */
  oldestMs: number;
  /** What waits on disk. */
  spooled: { envelopes: number; rows: number; bytes: number };
}

/** Where the poller hands its flushes. */
export interface Delivery extends AsyncDisposable {
  /** The destination's scheme. */
  readonly scheme: string;
  /** Whether the destination writes in place: the bytes may be a view valid during the call. */
  readonly inPlace: boolean;
  /**
   * How many bytes of flushes it takes on loan at most (see `lease` below): 0 when it does not
   * (it copies what it keeps).
   */
  readonly lends: number;
  /**
   * Takes one flush of `rows` rows. `owned`: the caller gives the bytes away; else, with a
   * `lease`, they are lent: kept as they are until the delivery calls `lease.release()`; else
   * they are only valid during the call and are copied when kept.
   */
  deliver(bytes: Uint8Array, rows: number, owned: boolean, lease?: Lease): void;
  /** Resolves once there is room for the next poll (at once except with the block policy). */
  room(): Promise<void>;
  /** What is waiting, or undefined for in-place delivery. */
  backlog(): Backlog | undefined;
  /** A poll starts (the queue never drops a poll's flushes for each other). */
  beginPoll(): void;
}

/**
 * A destination that takes flushes in place and queues what it makes of them (s3parquet: its
 * objects): its backlog and room are those of the delivery.
 */
export interface QueueingDestination {
  /** What waits in its queue. */
  backlog(): Backlog;
  /** Resolves once its queue has room (only ever waits with the block policy). */
  room(): Promise<void>;
}

function isQueueing(d: object): d is QueueingDestination {
  const q = d as Partial<QueueingDestination>;
  return typeof q.backlog === "function" && typeof q.room === "function";
}

/**
 * Delivery to a destination that writes in place: a failed write is counted and logged with
 * its rows (they are lost: such a destination has nothing to retry against). One that queues
 * what it makes ({@link QueueingDestination}) gives its backlog and room.
 */
export class InPlaceDelivery implements Delivery {
  /** Always true. */
  readonly inPlace = true;
  /** Nothing is kept: nothing to lend. */
  readonly lends = 0;
  /** @param dest the destination, the counters and log of failures */
  constructor(
    private readonly dest: SyncDestination,
    private readonly framing: Framing,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}
  /** The destination's scheme. */
  get scheme(): string {
    return this.dest.scheme;
  }
  /** Writes the flush now. */
  deliver(bytes: Uint8Array, rows: number): void {
    try {
      this.dest.sendSync(bytes, this.framing);
    } catch (err) {
      this.counters.inc("Poller", "envelopeFlush", "error");
      this.log.error(`${this.dest.scheme}: ${rows} rows lost: ${errorMessage(err)}`);
    }
  }
  /** Always room, but for a queueing destination whose queue is full (block policy). */
  room(): Promise<void> {
    return isQueueing(this.dest) ? this.dest.room() : Promise.resolve();
  }
  /** Nothing to mark. */
  beginPoll(): void {}
  /** Nothing waits, but in a queueing destination's queue. */
  backlog(): Backlog | undefined {
    return isQueueing(this.dest) ? this.dest.backlog() : undefined;
  }
  /** Releases the destination. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dest[Symbol.asyncDispose]();
  }
}

/** Settings of a {@link DeliveryQueue}. */
export interface QueueOptions {
  /** Most bytes held in memory. */
  maxBytes: number;
  /** What a full queue does. */
  full: FullPolicy;
  /** First and largest delay between attempts (ms). */
  retryInitialMs: number;
  retryMaxMs: number;
  /** How the marshaller frames its output. */
  framing: Framing;
  /** Where what does not fit in memory, and what is left at shutdown, goes. */
  spool?: Spool;
  /** Attempts of an envelope the peer refuses for good (RefusedError) before it is dropped (3). */
  permanentAttempts?: number;
  counters: Counters;
  log: Logger;
}

interface Entry {
  bytes: Uint8Array;
  rows: number;
  at: number;
  /** The poll that made it (see {@link DeliveryQueue.beginPoll}). */
  poll: number;
  /** The pool's buffer that `bytes` views, when the queue made the copy. */
  buf?: Uint8Array;
  /** The loan of `bytes`, when they were lent rather than copied. */
  lease?: Lease;
  /** Handed to the destination at least once: its client may still read it after a failure. */
  sent?: boolean;
}

const FN = "destQueue";

/** The bounded, retrying, ordered queue in front of a network destination. */
export class DeliveryQueue implements Delivery {
  /** Always false. */
  readonly inPlace = false;
  /** The bound (and a little more), when the destination reads views of shared memory. */
  readonly lends: number;
  private readonly mem: Entry[] = [];
  /**
   * Loans of envelopes left at close while their send was pending: the destination may still
   * read them, so they are released once it is disposed.
   */
  private readonly retired: Lease[] = [];
  /** Polls begun (entries carry the one that made them). */
  private poll = 0;
  private readonly pool: BufferPool;
  private memBytes = 0;
  private memRows = 0;
  /** The entry being sent (mem[0], or the spool's head), if any. */
  private inFlight: "mem" | "spool" | undefined;
  private readonly backoff: Backoff;
  private wake: (() => void) | undefined;
  private roomWaiters: (() => void)[] = [];
  private closing = false;
  /** Set once close() took over what was left: the pump touches nothing any more. */
  private abandoned = false;
  private abortSleep: (() => void) | undefined;
  private readonly pumping: Promise<void>;
  private episode:
    | { reason: DropReason; rows: number; bytes: number; envelopes: number }
    | undefined;
  private failing: { since: number; attempts: number } | undefined;

  /**
   * @param dest the destination (not one that writes in place)
   * @param o bounds, policy, retry delays, spool, counters, log
   */
  constructor(private readonly dest: Destination, private readonly o: QueueOptions) {
    if (isSync(dest)) throw new TypeError(`${dest.scheme} writes in place: no queue needed`);
    this.backoff = new Backoff({ initialMs: o.retryInitialMs, maxMs: o.retryMaxMs });
    // The bound in buffers: the queue's, and room for their rounding up (under 1/16 of an
    // envelope of 256 KiB or more).
    this.pool = new BufferPool(o.maxBytes + o.maxBytes / 16);
    this.lends = dest.sharedViews ? o.maxBytes + o.maxBytes / 16 : 0;
    this.pumping = this.pump();
  }

  /** The destination's scheme. */
  get scheme(): string {
    return this.dest.scheme;
  }

  private count(variable: string, rows: number, bytes: number, envelopes = 1): void {
    const c = this.o.counters;
    c.inc(FN, variable, "rows", rows);
    c.inc(FN, variable, "bytes", bytes);
    c.inc(FN, variable, "envelopes", envelopes);
  }

  private drop(reason: DropReason, rows: number, bytes: number, envelopes = 1): void {
    this.count(`drop_${reason}`, rows, bytes, envelopes);
    if (!this.episode) {
      this.episode = { reason, rows: 0, bytes: 0, envelopes: 0 };
      this.o.log.error(
        `${this.dest.scheme}: delivery queue ${
          reason === "queue_full" ? "full" : reason
        }: dropping envelopes (${this.o.full}); counted in xtcp_counts{function="${FN}",variable="drop_${reason}"}`,
      );
    }
    this.episode.rows += rows;
    this.episode.bytes += bytes;
    this.episode.envelopes += envelopes;
  }

  private endEpisode(): void {
    const e = this.episode;
    if (!e) return;
    this.episode = undefined;
    this.o.log.error(
      `${this.dest.scheme}: ${e.rows} rows (${e.envelopes} envelopes, ${e.bytes} bytes) dropped (${e.reason}) before the queue had room again`,
    );
  }

  /**
   * Takes a flush (kept as lent with a `lease`, else copied into a reused buffer unless
   * `owned`); never waits.
   */
  deliver(bytes: Uint8Array, rows: number, owned: boolean, lease?: Lease): void {
    const len = bytes.length;
    this.count("enqueued", rows, len);
    if (this.closing) {
      this.drop("shutdown", rows, len);
      lease?.release();
      return;
    }
    const spool = this.o.spool;
    // Once something is on disk, everything newer goes there too: delivery stays in order.
    if (spool && (!spool.empty || !this.fits(len))) {
      this.toSpool(owned ? bytes : bytes.slice(), rows);
      lease?.release();
      this.wake?.();
      return;
    }
    // A poll's flushes come all at once (the dump holds the thread): the queue always takes the
    // whole of the poll that runs now, over its bound if need be; only older polls are dropped.
    if (!this.fits(len) && this.o.full !== "block") {
      const older = (e: Entry | undefined) => e !== undefined && e.poll < this.poll;
      const first = this.inFlight === "mem" ? 1 : 0;
      if (this.o.full === "drop_newest") {
        if (this.mem.slice(first).some(older)) {
          this.drop("queue_full", rows, len);
          lease?.release();
          return;
        }
      } else {
        // drop_oldest: make room from older polls, never taking the envelope being sent.
        while (!this.fits(len) && older(this.mem[first])) {
          const [old] = this.mem.splice(first, 1);
          if (!old) break;
          this.free(old, !old.sent);
          this.memBytes -= old.bytes.length;
          this.memRows -= old.rows;
          this.drop("queue_full", old.rows, old.bytes.length);
        }
      }
    }
    const at = performance.now();
    if (owned) this.mem.push({ bytes, rows, at, poll: this.poll });
    else if (lease) this.mem.push({ bytes, rows, at, poll: this.poll, lease });
    else {
      const buf = this.pool.copy(bytes);
      this.mem.push({ bytes: buf.subarray(0, len), rows, at, poll: this.poll, buf });
    }
    this.memBytes += len;
    this.memRows += rows;
    this.wake?.();
  }

  /**
   * Gives back what an entry that left the queue held. `reuse`: nobody reads its bytes any more
   * (else a client may still, after a failed send: its pool buffer is left to the GC). A loan is
   * released unless its send is `pending`: a destination that takes loans reads the bytes only
   * until its send settled (see `Destination.sharedViews`).
   */
  private free(e: Entry, reuse: boolean, pending = false): void {
    if (e.buf) this.pool.release(e.buf, reuse);
    if (e.lease) {
      if (pending) this.retired.push(e.lease);
      else e.lease.release();
    }
  }

  /** A poll starts: its flushes are never dropped to make room for each other. */
  beginPoll(): void {
    this.poll++;
  }

  /** Room for `len` more bytes in memory (an envelope alone always fits an empty queue). */
  private fits(len: number): boolean {
    return this.mem.length === 0 || this.memBytes + len <= this.o.maxBytes;
  }

  private toSpool(bytes: Uint8Array, rows: number): void {
    const spool = this.o.spool;
    if (!spool) return;
    for (;;) {
      if (spool.append(bytes, rows)) {
        this.count("spooled", rows, bytes.length);
        return;
      }
      if (this.o.full === "drop_oldest") {
        const old = spool.dropOldest();
        if (old) {
          this.drop("spool_full", old.rows, old.bytes, old.envelopes);
          continue;
        }
      }
      if (this.o.full === "block") {
        // Back-pressure: held in memory, over the bound; the next poll waits for room.
        this.mem.push({ bytes, rows, at: performance.now(), poll: this.poll });
        this.memBytes += bytes.length;
        this.memRows += rows;
        return;
      }
      this.drop("spool_full", rows, bytes.length);
      return;
    }
  }

  /** Resolves once the queue is within its bound (only ever waits with the block policy). */
  room(): Promise<void> {
    if (this.o.full !== "block" || this.memBytes <= this.o.maxBytes || this.closing) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private roomMaybe(): void {
    if (this.memBytes <= this.o.maxBytes || this.closing) {
      for (const w of this.roomWaiters.splice(0)) w();
    }
    if (this.episode && this.memBytes < this.o.maxBytes / 2) this.endEpisode();
  }

  /** What is waiting. */
  backlog(): Backlog {
    const first = this.mem[0];
    return {
      envelopes: this.mem.length,
      rows: this.memRows,
      bytes: this.memBytes,
      oldestMs: first ? performance.now() - first.at : 0,
      spooled: this.o.spool?.stats ?? { envelopes: 0, rows: 0, bytes: 0 },
    };
  }

  private next(): { bytes: Uint8Array; rows: number; from: "mem" | "spool" } | undefined {
    const m = this.mem[0];
    if (m) return { bytes: m.bytes, rows: m.rows, from: "mem" };
    const r = this.o.spool?.peek();
    return r ? { ...r, from: "spool" } : undefined;
  }

  private acked(from: "mem" | "spool", rows: number, bytes: number): void {
    this.count("acked", rows, bytes);
    if (from === "mem") {
      const e = this.mem.shift();
      if (e) this.free(e, true);
      this.memBytes -= bytes;
      this.memRows -= rows;
      if (this.mem.length === 0) this.pool.trim();
    } else {
      this.o.spool?.ack();
      this.count("replayed", rows, bytes);
    }
    this.roomMaybe();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.abortSleep = done;
    });
  }

  private async pump(): Promise<void> {
    let permanentAttempts = 0;
    for (;;) {
      const item = this.next();
      if (!item) {
        if (this.closing) return;
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      this.inFlight = item.from;
      if (item.from === "mem") this.mem[0]!.sent = true;
      this.o.counters.inc(FN, "sends", "count");
      try {
        await this.dest.send(item.bytes, this.o.framing);
        if (this.abandoned) return; // close() spooled or dropped it already (at-least-once)
        this.inFlight = undefined;
        this.acked(item.from, item.rows, item.bytes.length);
        permanentAttempts = 0;
        this.backoff.reset();
        if (this.failing) {
          const { since, attempts } = this.failing;
          this.failing = undefined;
          this.o.log.info(
            `${this.dest.scheme}: delivering again after ${attempts} failed attempts over ${
              ((performance.now() - since) / 1000).toFixed(1)
            } s`,
          );
        }
      } catch (err) {
        if (this.abandoned) return;
        this.inFlight = undefined;
        this.o.counters.inc(FN, "retries", "count");
        if (!this.failing) {
          this.failing = { since: performance.now(), attempts: 0 };
          const b = this.backlog();
          this.o.log.error(
            `${this.dest.scheme}: send failed, retrying with backoff (${
              b.envelopes + b.spooled.envelopes
            } envelopes waiting): ${errorMessage(err)}`,
          );
        }
        this.failing.attempts++;
        if (isRefused(err) && ++permanentAttempts >= (this.o.permanentAttempts ?? 3)) {
          // Refused for good (too large, not allowed): keeping it would stop everything behind.
          permanentAttempts = 0;
          this.o.log.error(
            `${this.dest.scheme}: ${item.rows} rows refused ${
              this.o.permanentAttempts ?? 3
            } times, dropped: ${errorMessage(err)}`,
          );
          this.drop("rejected", item.rows, item.bytes.length);
          if (item.from === "mem") {
            const e = this.mem.shift();
            if (e) this.free(e, false);
            this.memBytes -= item.bytes.length;
            this.memRows -= item.rows;
          } else this.o.spool?.ack();
          this.roomMaybe();
          continue;
        }
        if (this.closing) return;
        await this.sleep(this.backoff.next());
      }
    }
  }

  /**
   * Stops taking flushes, waits up to `drainMs` for what is queued to be delivered, then writes
   * what is left to the spool (or, without one, drops it, counted), and releases the
   * destination.
   */
  async close(drainMs: number): Promise<void> {
    this.closing = true;
    this.roomMaybe();
    this.wake?.();
    const drained = await Promise.race([
      this.pumping.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), drainMs)),
    ]);
    this.abandoned = true;
    if (!drained) this.abortSleep?.();
    // What is still in memory (an envelope in flight included: it was not acknowledged). It is
    // older than anything spooled, so it goes in front.
    const pending = this.inFlight === "mem";
    const left = this.mem.splice(0);
    this.memBytes = 0;
    this.memRows = 0;
    const spool = this.o.spool;
    const kept = spool ? spool.prepend(left) : 0;
    let rows = 0;
    left.forEach((e, i) => {
      rows += e.rows;
      if (i < kept) this.count("spooled", e.rows, e.bytes.length);
      else this.drop("shutdown", e.rows, e.bytes.length);
      this.free(e, !e.sent, pending && i === 0);
    });
    if (left.length) {
      // Drained means the pump stopped: at shutdown a failed send is not retried.
      const why = drained ? "the destination failed during shutdown" : `not within ${drainMs} ms`;
      this.o.log.info(
        `${this.dest.scheme}: ${rows} rows (${left.length} envelopes) not delivered (${why}): ${
          spool ? "spooled" : "dropped"
        }`,
      );
    }
    this.endEpisode();
    spool?.[Symbol.dispose]();
  }

  /** {@link DeliveryQueue.close} with no wait, then the destination is released. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.closing) await this.close(0);
    try {
      await this.dest[Symbol.asyncDispose]();
    } finally {
      // The destination is gone: nothing reads what it was given any more.
      for (const l of this.retired.splice(0)) l.release();
    }
  }
}
