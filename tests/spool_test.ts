/**
 * The disk spool on a real file system: records come back in order across a reopen, acknowledged
 * segments are deleted, a partly read segment resumes where it stopped, and a damaged spool (a
 * segment cut short, a record whose bytes changed) is read up to the damage, the rest counted and
 * reported, never a crash.
 */
import assert from "node:assert/strict";
import { Spool } from "../src/dest/spool.ts";
import { Counters, Logger } from "../src/util/log.ts";

function open(dir: string, lines: string[] = [], counters = new Counters()) {
  return Spool.open(dir, {
    maxBytes: 1 << 20,
    segmentBytes: 4096,
    counters,
    log: new Logger(1, (l) => lines.push(l)),
  });
}

const record = (i: number) => new TextEncoder().encode(`record ${i} `.repeat(20 + (i % 7)));

function drain(spool: Spool): string[] {
  const out: string[] = [];
  for (let r = spool.peek(); r; r = spool.peek()) {
    out.push(new TextDecoder().decode(r.bytes));
    spool.ack();
  }
  return out;
}

const segments = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".xsp")).sort();

Deno.test("spool: records come back in order after a reopen; acknowledged segments are deleted", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const want: string[] = [];
    {
      using spool = open(dir);
      for (let i = 0; i < 60; i++) {
        assert.ok(spool.append(record(i), i + 1));
        want.push(new TextDecoder().decode(record(i)));
      }
      assert.equal(spool.stats.envelopes, 60);
      assert.equal(spool.stats.rows, (60 * 61) / 2);
      assert.ok(segments(dir).length > 3, "several segments");
      // Half is read and acknowledged before the stop.
      for (let i = 0; i < 25; i++) {
        assert.ok(spool.peek());
        spool.ack();
      }
    }
    const lines: string[] = [];
    using again = open(dir, lines);
    assert.equal(again.stats.envelopes, 35, "resumes after the acknowledged ones");
    assert.match(lines.join("\n"), /35 envelopes \(\d+ rows, \d+ bytes\) left by the last run/);
    assert.deepEqual(drain(again), want.slice(25));
    assert.deepEqual(segments(dir), [], "every segment deleted once acknowledged");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("spool: flushes older than everything spooled go in front (prepend)", () => {
  const dir = Deno.makeTempDirSync();
  try {
    using spool = open(dir);
    spool.append(record(2), 1);
    spool.append(record(3), 1);
    assert.equal(spool.prepend([{ bytes: record(0), rows: 1 }, { bytes: record(1), rows: 1 }]), 2);
    const dec = (i: number) => new TextDecoder().decode(record(i));
    assert.deepEqual(drain(spool), [dec(0), dec(1), dec(2), dec(3)]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("spool: a damaged segment is read up to the damage, the rest counted and reported", () => {
  const dir = Deno.makeTempDirSync();
  try {
    {
      using spool = open(dir);
      for (let i = 0; i < 60; i++) spool.append(record(i), 1);
    }
    const segs = segments(dir);
    assert.ok(segs.length >= 3);
    // First segment: cut in the middle of its last record. Second: one byte of a record changed.
    const first = `${dir}/${segs[0]}`;
    const size = Deno.statSync(first).size;
    Deno.truncateSync(first, size - 10);
    const second = `${dir}/${segs[1]}`;
    const bytes = Deno.readFileSync(second);
    bytes[bytes.length - 5] ^= 0xff;
    Deno.writeFileSync(second, bytes);
    const lines: string[] = [];
    const counters = new Counters();
    using spool = open(dir, lines, counters);
    assert.ok(spool.damagedBytes > 0);
    assert.equal(counters.get("destSpool", "damaged", "bytes"), spool.damagedBytes);
    assert.equal(
      lines.filter((l) => /Spool segment .* is damaged at byte \d+/.test(l)).length,
      2,
      lines.join("\n"),
    );
    const got = drain(spool);
    assert.equal(got.length, 58, "two records lost, every other one read");
    const dec = (i: number) => new TextDecoder().decode(record(i));
    assert.ok(got.every((g, i) => i === 0 || g !== got[i - 1]), "no duplicates");
    assert.equal(got.at(-1), dec(59), "the undamaged segments are read in full");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("spool: full at maxBytes; the oldest closed segment can be dropped to make room", () => {
  const dir = Deno.makeTempDirSync();
  try {
    using spool = Spool.open(dir, {
      maxBytes: 20_000,
      segmentBytes: 4096,
      counters: new Counters(),
      log: new Logger(0),
    });
    let n = 0;
    while (spool.append(record(n), 1)) n++;
    assert.ok(n > 10 && n < 100, `${n} records fit`);
    const before = spool.stats.envelopes;
    const dropped = spool.dropOldest();
    assert.ok(dropped && dropped.envelopes > 0);
    assert.equal(spool.stats.envelopes, before - dropped.envelopes);
    assert.ok(spool.append(record(n), 1), "room again");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
