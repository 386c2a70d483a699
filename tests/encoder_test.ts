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
import { encoderSource } from "../src/record/encoder_codegen.ts";
import { allSharedPcaps, HAVE_FIXTURES, ownCaptures } from "./support/fixtures.ts";
import { buildDatagram } from "./support/synth.ts";

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

function checkCapture(path: string): number {
  const enc = new RecordEncoder();
  const extra = new RecordExtra();
  const out = new OutBuf(4096);
  const env = new EnvelopeWriter(4096);
  const expected: ReturnType<typeof recordMessage>[] = [];
  let n = 0;
  decodeCapture(Deno.readFileSync(path), path, -1, (view) => {
    out.pos = 0;
    const x = extraFor(n, extra);
    enc.encode(view, STAMP, out, x);
    const fast = fromBinary(XtcpFlatRecordSchema, out.u8.slice(0, out.pos));
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
  for (const c of own) assert.ok(checkCapture(c.pcap) > 0);
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
    parseDatagram(
      view,
      dg,
      new DataView(dg.buffer),
      0,
      dg.length,
      { mask: -1, expectSeq: -1, expectPid: -1 },
      stats,
      (v) => {
        env.add(v, c.stamp);
        expected.push(recordMessage(v, c.stamp));
      },
    );
  }
  const e = fromBinary(EnvelopeSchema, env.envelope());
  assert.equal(e.row.length, 3);
  assert.ok(equals(EnvelopeSchema, e, create(EnvelopeSchema, { row: expected })));
  assert.equal(e.row[2].congestionAlgorithmString.length, 20_000);
});

Deno.test("the generated encoder (src/record/encoder_gen.ts) is up to date with the field table", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "ts", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(encoderSource()));
  await w.close();
  const out = await child.output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const committed = Deno.readTextFileSync(new URL("../src/record/encoder_gen.ts", import.meta.url));
  assert.ok(
    new TextDecoder().decode(out.stdout) === committed,
    "src/record/encoder_gen.ts is stale: run `deno task gen:encoder`",
  );
});
