/**
 * The fast encoder against the obvious path: for every socket of every capture, the bytes the
 * RecordEncoder writes decode (`fromBinary`) to exactly the message that `create` + `toBinary`
 * builds from the same fields.
 */
import assert from "node:assert/strict";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  XtcpFlatRecordSchema,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { decodeCapture } from "../src/netlink/capture.ts";
import { parseDatagram, ParseStats } from "../src/netlink/parse.ts";
import { SocketView } from "../src/netlink/socket_view.ts";
import { EnvelopeWriter, RecordEncoder } from "../src/record/encoder.ts";
import { RecordExtra } from "../src/record/extra.ts";
import { OutBuf } from "../src/record/out_buf.ts";
import { Stamp } from "../src/record/stamp.ts";
import { recordMessage } from "../src/record/values.ts";
import { allSharedPcaps, datagrams, HAVE_FIXTURES, ownCaptures } from "./support/fixtures.ts";
import { buildDatagram, parseAll } from "./support/synth.ts";

const STAMP = new Stamp({
  daemon_version: "xtcp2 test 0.1.0",
  timestamp_ns: 1_732_480_000_123_456_789n,
  hostname: "node-ä.example",
  location: "dc1",
  netns: "netns:[4026531840]",
  netns_inode: 4026531840n,
  nsid: 7,
  container_id: "c0ffee",
  label: "l",
  tag: "t",
  socket_fd: 12,
  netlinker_id: 0,
  uplink1_ifname: "eth0",
  uplink1_nic_speed_mbps: 25000,
  uplink2_lldp_port_descr: "port 2",
});

/** The per-socket additions of socket `n`: none, an owner, or an owner and closed, in turn. */
function extraFor(n: number, extra: RecordExtra): RecordExtra | undefined {
  if (n % 3 === 0) return undefined;
  extra.clear();
  extra.ownerPid = n % 2 ? 1 : 4_000_000 + n; // a one-byte and a four-byte varint
  extra.ownerComm = new TextEncoder().encode(n % 2 ? "x" : "kworker/u8:0-ev");
  extra.closed = n % 3 === 2;
  return extra;
}

/** `shared`: the encoders' output memory is shared memory (as for a writer that lends). */
function checkCapture(path: string, shared = false): number {
  const enc = new RecordEncoder(shared);
  const extra = new RecordExtra();
  const out = new OutBuf(4096);
  const env = new EnvelopeWriter(4096, new RecordEncoder(shared));
  const expected: ReturnType<typeof recordMessage>[] = [];
  let n = 0;
  decodeCapture(Deno.readFileSync(path), path, -1, (view) => {
    out.pos = 0;
    const x = extraFor(n, extra);
    enc.encode(view, STAMP, out, x);
    const fast = fromBinary(XtcpFlatRecordSchema, out.u8.slice(0, out.pos));
    // Canonical bytes: no field written that @bufbuild leaves out (a 0 without presence), no
    // varint longer than it needs.
    assert.equal(
      out.pos,
      toBinary(XtcpFlatRecordSchema, fast).length,
      `${path}: socket ${n} (index ${view.index}) is not written as @bufbuild writes it`,
    );
    const slow = recordMessage(view, STAMP, x);
    const slowRoundTrip = fromBinary(XtcpFlatRecordSchema, toBinary(XtcpFlatRecordSchema, slow));
    assert.ok(
      equals(XtcpFlatRecordSchema, fast, slowRoundTrip),
      `${path}: socket ${n} (index ${view.index}) differs between the fast and the obvious path`,
    );
    env.add(view, STAMP, x);
    expected.push(slowRoundTrip);
    n++;
  });
  // The envelope, framed for protobufList: varint(len) ‖ Envelope.
  const framed = env.framed();
  let len = 0;
  let shift = 0;
  let i = 0;
  for (;; i++) {
    len |= (framed[i] & 0x7f) << shift;
    shift += 7;
    if ((framed[i] & 0x80) === 0) break;
  }
  assert.equal(len, framed.length - i - 1, "protobufList prefix is the envelope length");
  const envelope = fromBinary(EnvelopeSchema, framed.subarray(i + 1));
  assert.equal(envelope.row.length, n);
  assert.ok(equals(EnvelopeSchema, envelope, create(EnvelopeSchema, { row: expected })));
  return n;
}

Deno.test({
  name: "fast encoder equals create+toBinary for every socket of every shared capture",
  ignore: !HAVE_FIXTURES,
  fn() {
    let total = 0;
    for (const path of allSharedPcaps()) total += checkCapture(path);
    assert.ok(total > 1000, `only ${total} sockets in the shared captures`);
  },
});

Deno.test("fast encoder equals create+toBinary for the project's own captures", () => {
  const own = ownCaptures();
  assert.ok(own.length > 0, "tests/captures holds no capture");
  for (const c of own) {
    assert.ok(checkCapture(c.pcap) > 0);
    assert.ok(checkCapture(c.pcap, true) > 0, "with shared memory too");
  }
});

Deno.test("row lengths of 1, 2 and 3 varint bytes all frame correctly", () => {
  const view = new SocketView();
  const stats = new ParseStats();
  const cases = [
    { cong: "", stamp: new Stamp({}) }, // bare header: a row under 128 bytes
    { cong: "bbr", stamp: STAMP }, // ordinary row
    { cong: "x".repeat(20_000), stamp: STAMP }, // row over 16 KiB
  ];
  const env = new EnvelopeWriter(64);
  const expected: ReturnType<typeof recordMessage>[] = [];
  for (const c of cases) {
    const dg = buildDatagram([{
      attrs: c.cong ? [[4, new TextEncoder().encode(c.cong + "\0")]] : [],
    }]);
    parseAll(
      dg,
      (v) => {
        env.add(v, c.stamp);
        expected.push(recordMessage(v, c.stamp));
      },
      view,
      stats,
    );
  }
  const e = fromBinary(EnvelopeSchema, env.envelope());
  assert.equal(e.row.length, 3);
  assert.ok(equals(EnvelopeSchema, e, create(EnvelopeSchema, { row: expected })));
  assert.equal(e.row[2].congestionAlgorithmString.length, 20_000);
});

Deno.test("the WebAssembly encoder: every congestion name, odd bytes, short structs, large values", () => {
  const enc = new RecordEncoder();
  const out = new OutBuf(64);
  const view = new SocketView();
  const stats = new ParseStats();
  const bytes = (s: string) => new TextEncoder().encode(s);
  // tcp_info with every byte set (u64 counters above 2^63, u32 values above 2^31), then cut short.
  const full = new Uint8Array(248).map((_, i) => (i * 37 + 255) & 0xff);
  const names = ["cubic", "dctcp", "vegas", "prague", "bbr", "bbr2", "bbr3", "bb", "", "reno"];
  const sockets = [
    ...names.map((n) => ({ attrs: [[4, bytes(n + "\0")], [2, full]] as [number, Uint8Array][] })),
    { attrs: [[4, Uint8Array.from([0x63, 0x75, 0x62, 0x01, 0xff, 0x7f, 0x20])]] }, // no NUL
    { attrs: [[2, full.subarray(0, 7)], [7, full.subarray(0, 10)], [1, full.subarray(0, 3)]] },
    { attrs: [[2, full.subarray(0, 105)], [16, full.subarray(0, 20)], [21, full.subarray(0, 8)]] },
    {
      attrs: [[9, full.subarray(0, 16)], [3, full.subarray(0, 16)], [17, full.subarray(0, 4)]],
    },
    { attrs: [[5, Uint8Array.of(0xb8)], [6, Uint8Array.of(0)], [8, Uint8Array.of(3)]] },
    { attrs: [[22, Uint8Array.of(0xff, 0x7f)], [4, Uint8Array.of()]] },
  ] as { attrs: [number, Uint8Array][] }[];
  const dg = buildDatagram(sockets);
  // A stamp too large for the function's room (its bytes are then written from JavaScript).
  const big = STAMP.with({ label: "l".repeat(9000) });
  for (const stamp of [STAMP, big]) {
    const env = new EnvelopeWriter(64);
    const expected: ReturnType<typeof recordMessage>[] = [];
    let n = 0;
    parseAll(
      dg,
      (v) => {
        out.pos = 0;
        enc.encode(v, stamp, out);
        const fast = fromBinary(XtcpFlatRecordSchema, out.u8.slice(0, out.pos));
        const slow = recordMessage(v, stamp);
        const slowRoundTrip = fromBinary(
          XtcpFlatRecordSchema,
          toBinary(XtcpFlatRecordSchema, slow),
        );
        assert.ok(equals(XtcpFlatRecordSchema, fast, slowRoundTrip), `socket ${n} differs`);
        env.add(v, stamp);
        expected.push(slowRoundTrip);
        n++;
      },
      view,
      stats,
    );
    assert.equal(n, sockets.length);
    const e = fromBinary(EnvelopeSchema, env.envelope());
    assert.ok(equals(EnvelopeSchema, e, create(EnvelopeSchema, { row: expected })));
  }
});

Deno.test("received in place (the poller's way) equals the plain path: records and parse counters, damaged datagrams too", () => {
  const inPlace = new EnvelopeWriter(4096);
  const { recv, view: pinned } = inPlace.source(1 << 16);
  const plain = new EnvelopeWriter(4096);
  const view = new SocketView();
  const recvDv = new DataView(recv.buffer, recv.byteOffset, recv.length);
  const opts = { mask: -1, expectSeq: -1, expectPid: -1 };
  const paths = [...allSharedPcaps(), ...ownCaptures().map((c) => c.pcap)];
  let sockets = 0;
  let damaged = 0;
  for (const path of paths) {
    for (const dg of datagrams(path)) {
      if (dg.length > recv.length) continue;
      // The datagram as captured, then with attribute bytes broken in a few places.
      const variants = [dg];
      for (let k = 1; k <= 3; k++) {
        const bad = dg.slice();
        for (let i = 16 + 72 + k * 7; i < bad.length; i += 97 * k) bad[i] ^= 0x5a << (k - 1);
        variants.push(bad);
      }
      for (const v of variants) {
        recv.set(v);
        const a = new ParseStats();
        const b = new ParseStats();
        inPlace.reset();
        plain.reset();
        const run = (
          w: EnvelopeWriter,
          sv: SocketView,
          u8: Uint8Array,
          dv: DataView,
          st: ParseStats,
        ) => {
          try {
            parseDatagram(sv, u8, dv, 0, v.length, opts, st, (x) => w.add(x, STAMP));
            return "ok";
          } catch (err) {
            return (err as Error).message;
          }
        };
        const ra = run(inPlace, pinned, recv, recvDv, a);
        const rb = run(plain, view, v, new DataView(v.buffer), b);
        assert.equal(ra, rb, path);
        assert.deepEqual({ ...a }, { ...b }, `${path}: parse counters differ`);
        assert.deepEqual(inPlace.envelope(), plain.envelope(), `${path}: records differ`);
        sockets += a.sockets;
        if (a.attrErrors + a.attrShort > 0) damaged++;
      }
    }
  }
  assert.ok(sockets > 1000, `only ${sockets} sockets`);
  assert.ok(damaged > 10, `only ${damaged} damaged datagrams`);
});
