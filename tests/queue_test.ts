/**
 * The delivery queue's copies, in reused buffers: every envelope arrives intact and in order
 * while the poller overwrites its own buffer after each flush; an acknowledged envelope's buffer
 * carries a later one; one that was sent and failed is never written again (its client may still
 * read it), even once it is dropped; the buffers stay within the queue's bound. Flushes on loan
 * are released once their send settled for good: at the acknowledgement, at a drop, and, for an
 * envelope left at shutdown with its send still pending, once the destination is disposed.
 */
import assert from "node:assert/strict";
import { BufferPool } from "../src/dest/buffer_pool.ts";
import type { Destination } from "../src/dest/destination.ts";
import { DeliveryQueue } from "../src/dest/queue.ts";
import type { Lease } from "../src/util/lease.ts";
import { Counters, Logger } from "../src/util/log.ts";

/**
 * A destination that records what it was given and fails while `failing` is set; while `hanging`
 * is, its sends never settle. It takes loans (a socket destination's `sharedViews`).
 */
class FakeDest implements Destination {
  readonly scheme = "fake";
  readonly sharedViews = true;
  failing = false;
  hanging = false;
  /** Each attempt: the bytes as given (a view, not a copy) and what they held then. */
  readonly attempts: { view: Uint8Array; then: string; ok: boolean }[] = [];
  send(bytes: Uint8Array): Promise<void> {
    if (this.hanging) {
      this.attempts.push({ view: bytes, then: text(bytes), ok: false });
      return new Promise(() => {});
    }
    const ok = !this.failing;
    this.attempts.push({ view: bytes, then: text(bytes), ok });
    return ok ? Promise.resolve() : Promise.reject(new Error("Connection refused: fake"));
  }
  get delivered(): string[] {
    return this.attempts.filter((a) => a.ok).map((a) => a.then);
  }
  [Symbol.asyncDispose](): Promise<void> {
    return Promise.resolve();
  }
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

function queue(dest: FakeDest, maxBytes: number, counters = new Counters()): DeliveryQueue {
  return new DeliveryQueue(dest, {
    maxBytes,
    full: "drop_oldest",
    retryInitialMs: 5,
    retryMaxMs: 10,
    framing: "message",
    counters,
    log: new Logger(0, () => {}),
  });
}

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The poller's envelope buffer: one buffer, overwritten by every flush. */
class Poller {
  private readonly buf = new Uint8Array(64 * 1024);
  n = 0;
  /** A flush of `size` bytes, borrowed: valid during the deliver call only. */
  flush(size: number): Uint8Array {
    const label = `envelope ${this.n++} `;
    const out = this.buf.subarray(0, size);
    for (let i = 0; i < size; i++) out[i] = label.charCodeAt(i % label.length);
    return out;
  }
}

Deno.test("queue: borrowed flushes arrive intact and in order; acknowledged buffers carry later envelopes", async () => {
  const dest = new FakeDest();
  const q = queue(dest, 1 << 20);
  const poller = new Poller();
  const want: string[] = [];
  const buffers = new Set<ArrayBufferLike>();
  for (let poll = 0; poll < 5; poll++) {
    q.beginPoll();
    for (const size of [40_000, 40_000, 12_345]) {
      const b = poller.flush(size);
      want.push(text(b));
      q.deliver(b, 1, false);
    }
    await until(`poll ${poll} delivered`, () => dest.delivered.length === want.length);
    for (const a of dest.attempts.slice(-3)) buffers.add(a.view.buffer);
  }
  assert.deepEqual(dest.delivered, want);
  assert.ok(buffers.size <= 3, `the first poll's three buffers are reused (${buffers.size})`);
  await q.close(100);
  await q[Symbol.asyncDispose]();
});

Deno.test("queue: an envelope that was sent and failed is never written again, even once dropped", async () => {
  const dest = new FakeDest();
  const counters = new Counters();
  const q = queue(dest, 100_000, counters);
  const poller = new Poller();
  dest.failing = true;
  q.deliver(poller.flush(30_000), 1, false);
  await until("a failed attempt", () => dest.attempts.length > 0);
  const failed = dest.attempts[0]!;
  // More than the queue holds, one poll per envelope (a poll's own envelopes are never dropped
  // for each other): the oldest, the failed one among them, are dropped.
  for (let i = 0; i < 12; i++) {
    q.beginPoll();
    q.deliver(poller.flush(30_000), 1, false);
  }
  assert.ok(counters.get("destQueue", "drop_queue_full", "envelopes") > 0, "the queue overflowed");
  dest.failing = false;
  await until("the queue drained", () => q.backlog().envelopes === 0);
  for (let i = 0; i < 20; i++) q.deliver(poller.flush(30_000), 1, false);
  await until("the rest delivered", () => q.backlog().envelopes === 0);
  assert.equal(text(failed.view), failed.then, "the failed attempt's bytes are unchanged");
  for (const a of dest.attempts) {
    if (!a.ok) assert.equal(text(a.view), a.then);
  }
  await q.close(100);
  await q[Symbol.asyncDispose]();
});

Deno.test("buffer pool: reuses the smallest buffer that fits, keeps within its bound, trims to what was lent", () => {
  const pool = new BufferPool(200_000);
  const a = pool.copy(new Uint8Array(50_000).fill(1));
  const b = pool.copy(new Uint8Array(20_000).fill(2));
  assert.ok(a.length >= 50_000 && b.length >= 20_000);
  assert.equal(a[49_999], 1);
  pool.release(a, true);
  pool.release(b, true);
  assert.equal(pool.copy(new Uint8Array(10_000)), b, "the smaller one fits");
  assert.equal(pool.copy(new Uint8Array(45_000)), a);
  pool.release(a, false);
  assert.notEqual(pool.copy(new Uint8Array(45_000)), a, "not reused when told so");
  // Past the bound: buffers given back are left to the GC.
  const many = Array.from({ length: 6 }, () => pool.copy(new Uint8Array(60_000)));
  for (const m of many) pool.release(m, true);
  assert.ok(pool.bytes.total <= 200_000 + 64 * 1024, `within the bound: ${pool.bytes.total}`);
  pool.trim();
  assert.ok(pool.bytes.total <= 200_000, "trimmed");
});

/** A loan that counts its releases. */
function loan(): Lease & { released: number } {
  const l = { released: 0, release: () => void l.released++ };
  return l;
}

const flush = (n: number) => new TextEncoder().encode(`envelope ${n} `.repeat(2000));

Deno.test("queue: each loan is released once its send settled for good: acknowledged, dropped, or left at shutdown", async () => {
  const dest = new FakeDest();
  const counters = new Counters();
  const q = queue(dest, 100_000, counters);
  assert.ok(q.lends > 0, "a destination that takes shared views is lent flushes");
  // Delivered: released once acknowledged, not before.
  dest.failing = true;
  const a = loan();
  q.deliver(flush(0), 1, false, a);
  await until("a failed attempt", () => dest.attempts.length >= 2);
  assert.equal(a.released, 0, "held while it is retried");
  dest.failing = false;
  await until("acknowledged", () => a.released === 1);
  // Failed, then dropped for newer polls: released at the drop (its sends settled).
  dest.failing = true;
  const failed = loan();
  q.beginPoll();
  q.deliver(flush(1), 1, false, failed);
  const sent = dest.attempts.length;
  await until("a failed attempt", () => dest.attempts.length > sent);
  const later = Array.from({ length: 8 }, () => loan());
  later.forEach((l, i) => {
    q.beginPoll();
    q.deliver(flush(2 + i), 1, false, l);
  });
  assert.ok(counters.get("destQueue", "drop_queue_full", "envelopes") > 0, "the queue overflowed");
  assert.equal(failed.released, 1, "dropped: released");
  assert.ok(later.some((l) => l.released === 1), "dropped envelopes never sent: released");
  dest.failing = false;
  await until("the queue drained", () => q.backlog().envelopes === 0);
  for (const l of later) assert.equal(l.released, 1, "every loan released exactly once");
  // Left at shutdown (no spool): dropped and released, but the one whose send is still pending
  // only once the destination is disposed.
  dest.hanging = true;
  const left = [loan(), loan()];
  q.beginPoll();
  left.forEach((l, i) => q.deliver(flush(20 + i), 1, false, l));
  await until(
    "a send pending",
    () => dest.attempts.length > 0 && dest.attempts.at(-1)!.ok === false,
  );
  await q.close(20);
  assert.equal(left[1]!.released, 1, "never sent: released at close");
  assert.equal(left[0]!.released, 0, "its send pending: the destination may still read it");
  await q[Symbol.asyncDispose]();
  assert.equal(left[0]!.released, 1, "released once the destination is disposed");
  const after = loan();
  q.deliver(flush(30), 1, false, after);
  assert.equal(after.released, 1, "a flush handed over after close is dropped and released");
});
