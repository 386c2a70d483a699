/**
 * Flushes on loan instead of copied: the envelope writer lends a flush's bytes where they were
 * written and writes the next envelopes elsewhere; lent bytes are never written over until they
 * are released, whatever the order of the releases, however large a row, however far the
 * buffer grows (its memory is shared: growing it leaves every view valid). How the delivery
 * queue releases the loans: tests/queue_test.ts.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { EnvelopeWriter, RecordEncoder } from "../src/record/encoder.ts";
import { Stamp } from "../src/record/stamp.ts";
import type { Lease } from "../src/util/lease.ts";
import { buildDatagram, parseAll } from "./support/synth.ts";

const STAMP = new Stamp({ hostname: "lend.example", netns_inode: 4026531840n, label: "l" });

/** Rows whose congestion name is `cong` (its length makes the row as large as wanted). */
function rows(env: EnvelopeWriter, n: number, cong: string): void {
  const dg = buildDatagram(
    Array.from({ length: n }, () => ({ attrs: [[4, new TextEncoder().encode(cong + "\0")]] })),
  );
  parseAll(dg, (v) => env.add(v, STAMP));
}

/** A small deterministic generator (the test's choices are the same every run). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

interface Loan {
  view: Uint8Array;
  copy: Uint8Array;
  rows: number;
  lease: Lease;
}

/** A writer that can lend: its encoder's output memory is shared memory. */
const lender = () => new EnvelopeWriter(4096, new RecordEncoder(true));

Deno.test("envelope writer: one whose memory is not shared lends nothing (growing it would detach the loans)", () => {
  const env = new EnvelopeWriter(4096);
  rows(env, 2, "bbr");
  assert.equal(env.lend(env.framed(), 1024, 1 << 20), undefined);
  assert.deepEqual(env.lent, { bytes: 0, regions: 0 });
});

Deno.test("envelope writer: lent flushes stay as written until released, in any order, past big rows and growth", () => {
  const env = lender();
  const rnd = lcg(7);
  const RESERVE = 8192;
  const MOST = 64 * 1024;
  const held: Loan[] = [];
  let lent = 0;
  let refused = 0;
  let grewWhileLent = 0;
  const check = () => {
    for (const l of held) {
      assert.equal(l.view.length, l.copy.length, "a lent view kept its length");
      assert.deepEqual(l.view, l.copy, "a lent flush is never written over");
    }
  };
  let highest = 0;
  for (let i = 0; i < 1500; i++) {
    // Mostly small rows, now and then one larger than the reserve (the envelope moves).
    const big = rnd() < 0.05;
    const before = env.out.u8.buffer.byteLength;
    const lentBefore = held.length;
    rows(env, big ? 1 : 1 + Math.floor(rnd() * 20), big ? "x".repeat(20_000) : "bbr");
    const bytes = env.framed();
    highest = Math.max(highest, bytes.byteOffset + bytes.length);
    const lease = env.lend(bytes, RESERVE, MOST);
    if (lease) {
      lent++;
      held.push({ view: bytes, copy: bytes.slice(), rows: env.rows, lease });
    } else refused++;
    env.reset();
    check();
    if (env.out.u8.buffer.byteLength > before && lentBefore) grewWhileLent++;
    // Release a few: the oldest, or any one.
    while (held.length && rnd() < 0.45) {
      const k = rnd() < 0.6 ? 0 : Math.floor(rnd() * held.length);
      const [l] = held.splice(k, 1);
      l!.lease.release();
      l!.lease.release(); // a second release does nothing
    }
    check();
  }
  assert.ok(lent > 1000, `most flushes were lent (${lent})`);
  // Round and round in its span (what may be lent and two reserves), past it where loans
  // released out of order leave no room inside, at the lowest place free: bounded, not creeping
  // up with every loan (at random releases like these, about twice the span).
  const span = MOST + 2 * RESERVE;
  assert.ok(highest <= 3 * span, `the envelopes stay near the span (${highest} > ${3 * span})`);
  assert.ok(refused > 0, "some were refused: more than `most` bytes would have been lent");
  assert.equal(env.lent.bytes, held.reduce((s, l) => s + l.view.length, 0));
  for (const l of held) {
    // Each lent flush is a whole protobufList frame: varint length, then the envelope.
    let len = 0, shift = 0, p = 0;
    for (;;) {
      const b = l.view[p++]!;
      len |= (b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80) break;
    }
    assert.equal(p + len, l.view.length);
    assert.equal(fromBinary(EnvelopeSchema, l.view.subarray(p)).row.length, l.rows);
  }
  for (const l of held.splice(0)) l.lease.release();
  assert.deepEqual(env.lent, { bytes: 0, regions: 0 });
  // Everything released: the next envelope starts at the buffer's start again.
  rows(env, 3, "bbr");
  assert.ok(env.framed().byteOffset < 8, "back at the start");
  assert.ok(grewWhileLent > 0, "the buffer grew while flushes were lent");
});

Deno.test("envelope writer: a row larger than the room before the next loan moves the envelope, rows and marks intact", () => {
  const env = lender();
  // Loans of small flushes, two held at a time, in a span of 4 KiB + 2 × 1 KiB: the writer
  // goes round, until its envelope starts just below a loan.
  const held: Loan[] = [];
  for (let i = 0; i < 100; i++) {
    rows(env, 2, "bbr");
    const view = env.framed();
    const lease = env.lend(view, 1024, 4096);
    assert.ok(lease, "lent");
    held.push({ view, copy: view.slice(), rows: 2, lease });
    env.reset();
    if (held.length > 2) held.shift()!.lease.release();
    if (held.some((l) => l.view.byteOffset > env.envelope().byteOffset)) break;
  }
  const above = held.find((l) => l.view.byteOffset > env.envelope().byteOffset);
  assert.ok(above, "the writer went round, below a loan");
  assert.ok(env.out.u8.length < 16 * 1024, "inside its span: the buffer did not grow on");
  rows(env, 1, "cubic"); // still room before the loan
  const mark = env.mark();
  rows(env, 1, "y".repeat(30_000)); // not: the envelope moves past the loan
  rows(env, 1, "dctcp");
  for (const l of held) assert.deepEqual(l.view, l.copy, "the loans are untouched");
  assert.deepEqual(
    fromBinary(EnvelopeSchema, env.envelope()).row.map((r) => r.congestionAlgorithmString.length),
    [5, 30_000, 5],
  );
  env.rollback(mark); // drops the last two rows, wherever the envelope went
  const e = fromBinary(EnvelopeSchema, env.envelope());
  assert.deepEqual(e.row.map((r) => r.congestionAlgorithmString), ["cubic"]);
  for (const l of held) l.lease.release();
});
