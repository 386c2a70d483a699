/**
 * Robustness: thousands of truncated and mutated datagrams derived from the captures produce
 * typed errors (DecodeError, NetlinkError) or skipped attributes — never another exception, a
 * hang, or a read past the datagram.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { XtcpFlatRecordSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { DecodeError, NetlinkError } from "../src/netlink/errors.ts";
import { ParseStats } from "../src/netlink/parse.ts";
import { parseAll } from "./support/synth.ts";
import { NETLINK_SOCK_DIAG, pcapPackets } from "../src/netlink/pcap.ts";
import { decodeCapture } from "../src/netlink/capture.ts";
import { SocketView } from "../src/netlink/socket_view.ts";
import { RecordEncoder } from "../src/record/encoder.ts";
import { OutBuf } from "../src/record/out_buf.ts";
import { Stamp } from "../src/record/stamp.ts";
import { recordJson } from "../src/record/values.ts";
import { allSharedPcaps, HAVE_FIXTURES, ownCaptures } from "./support/fixtures.ts";

/** Small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function datagrams(): Uint8Array[] {
  const files = [...allSharedPcaps(), ...ownCaptures().map((c) => c.pcap)];
  const out: Uint8Array[] = [];
  for (const f of files) {
    const bytes = Deno.readFileSync(f);
    for (const p of pcapPackets(bytes, f)) {
      if (p.protocol === NETLINK_SOCK_DIAG && p.end - p.offset > 16) {
        out.push(bytes.slice(p.offset, p.end));
      }
    }
  }
  return out;
}

const stamp = new Stamp({ hostname: "h" });
const enc = new RecordEncoder();

/**
 * Parses `dg` (an exactly sized copy, so any read past its end shows) and encodes every socket.
 * Returns "ok", "decode" or "kernel"; anything else thrown fails the test.
 */
function exercise(dg: Uint8Array, view: SocketView, stats: ParseStats, out: OutBuf): string {
  const exact = new Uint8Array(new ArrayBuffer(dg.length));
  exact.set(dg);
  try {
    parseAll(
      exact,
      (v) => {
        out.pos = 0;
        enc.encode(v, stamp, out);
        // Reading past the buffer would yield undefined/NaN: the bytes would not decode.
        fromBinary(XtcpFlatRecordSchema, out.u8.subarray(0, out.pos));
        const json = recordJson(v, stamp);
        if (/undefined|NaN/.test(json)) throw new Error(`bad value in ${json}`);
      },
      view,
      stats,
    );
    return "ok";
  } catch (err) {
    if (err instanceof DecodeError) return "decode";
    if (err instanceof NetlinkError) return "kernel";
    throw err;
  }
}

Deno.test({
  name: "truncated and mutated datagrams never throw untyped errors",
  ignore: !HAVE_FIXTURES && ownCaptures().length === 0,
  fn() {
    const all = datagrams();
    // The shared captures give hundreds; without them, this project's own captures still count.
    assert.ok(all.length > (HAVE_FIXTURES ? 10 : 0), `${all.length} datagrams`);
    const view = new SocketView();
    const stats = new ParseStats();
    const out = new OutBuf(1 << 16);
    const rand = rng(0x5eed);
    const outcomes: Record<string, number> = {};
    const count = (o: string) => (outcomes[o] = (outcomes[o] ?? 0) + 1);
    let cases = 0;
    const started = performance.now();
    // Every datagram at least once, and as many rounds as make 5,000 cases when the corpus is
    // small (this project's own captures only): each round draws new cuts and mutations.
    for (let round = 0; round === 0 || cases < 5000; round++) {
      for (const dg of all) {
        // Truncations: the first header bytes, then random cut points.
        for (let k = 0; k < 30; k++) {
          const cut = k < 10 ? k * 2 : Math.floor(rand() * dg.length);
          count(exercise(dg.subarray(0, cut), view, stats, out));
          cases++;
        }
        // Random byte mutations, biased towards length and type fields.
        for (let k = 0; k < 40; k++) {
          const m = dg.slice();
          const flips = 1 + Math.floor(rand() * 4);
          for (let j = 0; j < flips; j++) {
            const at = rand() < 0.5
              ? Math.floor(rand() * Math.min(m.length, 200))
              : Math.floor(rand() * m.length);
            m[at] = rand() < 0.3 ? 0xff : Math.floor(rand() * 256);
          }
          count(exercise(m, view, stats, out));
          cases++;
        }
      }
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${cases} cases in ${seconds.toFixed(1)} s:`,
      outcomes,
      `attrErrors ${stats.attrErrors}`,
    );
    assert.ok(cases >= 5000, `only ${cases} cases`);
    assert.ok((outcomes.decode ?? 0) > 0 && (outcomes.ok ?? 0) > 0);
    assert.ok(stats.attrErrors > 0, "no mutation reached the attribute walk");
  },
});

Deno.test("damaged capture files give DecodeError with the file name and offset", () => {
  const path = ownCaptures()[0]?.pcap ?? allSharedPcaps()[0];
  assert.ok(path, "no capture to damage");
  const bytes = Deno.readFileSync(path);
  for (const cut of [10, 30, bytes.length - 3]) {
    assert.throws(
      () => decodeCapture(bytes.slice(0, cut), "damaged.pcap", -1, () => {}),
      (e: unknown) =>
        e instanceof DecodeError && e.source === "damaged.pcap" && e.offset >= 0 &&
        e.message.includes("damaged.pcap at offset"),
    );
  }
  const bad = bytes.slice();
  bad[0] = 0;
  assert.throws(() => decodeCapture(bad, "x.pcap", -1, () => {}), /bad magic/);
});
