/**
 * Splitting one flush for a datagram (src/dest/split.ts) on real rows (this project's own
 * capture): protobufList into complete envelopes at rows, line formats at line ends, other
 * formats whole or not at all; every piece fits, nothing is lost or reordered, and what cannot
 * fit alone is counted. Pure: no socket, no root.
 */
import assert from "node:assert/strict";
import { equals, fromBinary } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  XtcpFlatRecordSchema,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { splitFlush, splitLines } from "../src/dest/split.ts";
import { marshaller } from "../src/format/marshal.ts";
import { varintSize } from "../src/util/varint.ts";
import { captureEnvelope } from "./support/envelope.ts";
import { unframe } from "./support/records.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("protobufList: complete envelopes at row boundaries, every row once, in order", () => {
  const env = captureEnvelope();
  const framed = marshaller("protobufList").marshal(env).slice();
  const rows = fromBinary(EnvelopeSchema, unframe(framed)).row;
  assert.ok(rows.length > 100, `${rows.length} rows`);
  for (const max of [framed.length, 4096, 1500, 700]) {
    const { pieces, dropped } = splitFlush(framed, max, "protobufList", "message");
    assert.equal(dropped, 0, `max ${max}`);
    if (max === framed.length) assert.deepEqual(pieces, [framed], "what fits is sent as is");
    assert.ok(pieces.every((p) => p.length <= max), `a piece above ${max} bytes`);
    const back = pieces.flatMap((p) => fromBinary(EnvelopeSchema, unframe(p)).row);
    assert.equal(back.length, rows.length, `max ${max}`);
    back.forEach((r, i) => assert.ok(equals(XtcpFlatRecordSchema, r, rows[i])));
    if (max < framed.length) assert.ok(pieces.length >= framed.length / max, `max ${max}`);
  }
});

Deno.test("protobufList: a row larger than the limit alone is dropped and counted, the rest kept", () => {
  const env = captureEnvelope();
  const framed = marshaller("protobufList").marshal(env).slice();
  const rows = fromBinary(EnvelopeSchema, unframe(framed)).row;
  const sizes = pieceRowSizes(framed);
  const max = Math.max(...sizes); // the largest row (with its tag and length) no longer fits
  // A piece is varint(length) ‖ rows: a row fits alone only with its piece's prefix.
  const tooLarge = sizes.filter((n) => n + varintSize(n) > max).length;
  assert.ok(tooLarge >= 1);
  const { pieces, dropped } = splitFlush(framed, max, "protobufList", "message");
  assert.equal(dropped, tooLarge);
  const back = pieces.flatMap((p) => fromBinary(EnvelopeSchema, unframe(p)).row);
  assert.equal(back.length, rows.length - tooLarge);
});

/** Bytes of each row field (tag, length and row) of a framed envelope. */
function pieceRowSizes(framed: Uint8Array): number[] {
  const env = unframe(framed);
  const out: number[] = [];
  for (let at = 0; at < env.length;) {
    assert.equal(env[at], 0x52, "row field tag (10, length-delimited)");
    let len = 0;
    let p = at + 1;
    for (let shift = 0;; p++, shift += 7) {
      len += (env[p] & 0x7f) * 2 ** shift;
      if (env[p] < 0x80) break;
    }
    const end = p + 1 + len;
    out.push(end - at);
    at = end;
  }
  return out;
}

Deno.test("line formats split at line ends; a line longer than the limit is dropped, counted", () => {
  const env = captureEnvelope();
  const jsonl = marshaller("jsonl").marshal(env).slice();
  const lines = dec.decode(jsonl).split("\n").slice(0, -1);
  for (const max of [jsonl.length, 8192, Math.max(...lines.map((l) => l.length)) + 1]) {
    const { pieces, dropped } = splitFlush(jsonl, max, "jsonl", "lines");
    assert.equal(dropped, 0);
    assert.ok(pieces.every((p) => p.length <= max && p.at(-1) === 0x0a), `max ${max}`);
    assert.deepEqual(pieces.map((p) => dec.decode(p)).join(""), dec.decode(jsonl));
  }
  const text = "short\n" + "x".repeat(30) + "\nmid-size line\nend\n";
  const { pieces, dropped } = splitLines(enc.encode(text), 16);
  assert.equal(dropped, 1);
  assert.deepEqual(pieces.map((p) => dec.decode(p)), ["short\n", "mid-size line\n", "end\n"]);
});

Deno.test("a message format that does not fit is dropped whole (one), one that fits is kept", () => {
  const env = captureEnvelope();
  const pj = marshaller("protoJson").marshal(env).slice();
  assert.deepEqual(splitFlush(pj, pj.length, "protoJson", "message"), { pieces: [pj], dropped: 0 });
  assert.deepEqual(splitFlush(pj, pj.length - 1, "protoJson", "message"), {
    pieces: [],
    dropped: 1,
  });
});

Deno.test("splitLines: a last record without a newline is split off, or counted when too long", () => {
  const enc = (t: string) => new TextEncoder().encode(t);
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  const a = splitLines(enc("aaaa\nbbbb"), 6);
  assert.deepEqual(a.pieces.map(dec), ["aaaa\n", "bbbb"]);
  assert.equal(a.dropped, 0);
  const b = splitLines(enc("aaaa\nbbbbbbbb"), 6);
  assert.deepEqual(b.pieces.map(dec), ["aaaa\n"]);
  assert.equal(b.dropped, 1);
});
