/**
 * The netlink layer on real bytes: single attributes captured from kernels 4.19–6.10, the dump
 * request as the originals sent it, idiag_ext derivation, and framing edge cases.
 */
import assert from "node:assert/strict";
import { DecodeError, NetlinkError } from "../src/netlink/errors.ts";
import { DECODER_NAMES, idiagExt, parseDeserializers } from "../src/netlink/deserializers.ts";
import { parseDatagram, ParseStats } from "../src/netlink/parse.ts";
import { Dumper } from "../src/netlink/dump.ts";
import { NetlinkCounts } from "../src/poll/netlink_counts.ts";
import { Counters } from "../src/util/log.ts";
import { pcapPackets } from "../src/netlink/pcap.ts";
import { writeDumpRequest } from "../src/netlink/request.ts";
import { SocketView } from "../src/netlink/socket_view.ts";
import { RecordEncoder } from "../src/record/encoder.ts";
import { OutBuf } from "../src/record/out_buf.ts";
import { Stamp } from "../src/record/stamp.ts";
import { FIXTURE_DIR, HAVE_FIXTURES } from "./support/fixtures.ts";
import { type Rec, viewToRec } from "./support/records.ts";
import { buildDatagram } from "./support/synth.ts";

/** Decodes one socket message built around a raw rtattr (header + payload). */
function decodeAttr(rtattr: Uint8Array, mask = -1): { rec: Rec; stats: ParseStats } {
  const type = rtattr[2] | (rtattr[3] << 8);
  const payload = rtattr.subarray(4, rtattr[0] | (rtattr[1] << 8));
  const dg = buildDatagram([{ attrs: [[type, payload]] }]);
  const view = new SocketView();
  const stats = new ParseStats();
  let rec: Rec | undefined;
  parseDatagram(
    view,
    dg,
    new DataView(dg.buffer),
    0,
    dg.length,
    {
      mask,
      expectSeq: -1,
      expectPid: -1,
    },
    stats,
    (v) => (rec = viewToRec(v)),
  );
  assert.ok(rec, "no socket decoded");
  return { rec, stats };
}

function attr(path: string): Uint8Array {
  return Deno.readFileSync(`${FIXTURE_DIR}/${path}`);
}

const fx = { ignore: !HAVE_FIXTURES };

Deno.test({
  ...fx,
  name: "congestion control names map to the enum and fill the string",
  fn() {
    for (
      const [file, name, e] of [
        ["6_6_44/attribute_cong", "cubic", 1],
        ["6_6_44/attribute_cong_bbr", "bbr", 5],
        ["6_6_44/attribute_cong_dctcp", "dctcp", 2],
        ["6_6_44/attribute_cong_vegas", "vegas", 3],
        ["6_10_3/attribute_cong_cubic", "cubic", 1],
      ] as const
    ) {
      const { rec } = decodeAttr(attr(file));
      assert.equal(rec.get("congestion_algorithm_string"), name, file);
      assert.equal(rec.get("congestion_algorithm_enum"), e, file);
    }
    const enc = new TextEncoder();
    for (
      const [name, e] of [["bbr2", 6], ["bbr3", 7], ["prague", 4], ["reno", 0], ["", 0]] as const
    ) {
      const payload = enc.encode(name + "\0");
      const rta = new Uint8Array([4 + payload.length, 0, 4, 0, ...payload]);
      assert.equal(decodeAttr(rta).rec.get("congestion_algorithm_enum"), e, name);
    }
  },
});

Deno.test({
  ...fx,
  name: "single attributes decode to the values of their kernel structs",
  fn() {
    const cases: [string, Record<string, number | bigint>][] = [
      ["6_6_44/attribute_bbrinfo", {
        bbr_info_bw_lo: 0x61a7f9e5,
        bbr_info_bw_hi: 0,
        bbr_info_min_rtt: 20,
        bbr_info_pacing_gain: 739,
        bbr_info_cwnd_gain: 739,
      }],
      ["6_10_3/attribute_bbrinfo", {
        bbr_info_bw_lo: 15103,
        bbr_info_min_rtt: 30,
        bbr_info_pacing_gain: 320,
        bbr_info_cwnd_gain: 512,
      }],
      ["6_6_44/attribute_cgroup_id", { c_group: 4354n }],
      ["6_10_3/attribute_cgroup_21", { c_group: 3945n }],
      ["6_6_44/attribute_class_id", { class_id: 0 }],
      ["6_6_44/attribute_dctcpinfo", {
        dctcp_info_enabled: 1,
        dctcp_info_ce_state: 0,
        dctcp_info_alpha: 654,
        dctcp_info_ab_ecn: 0,
        dctcp_info_ab_tot: 32768,
      }],
      ["6_6_44/attribute_vegasinfo", {
        vegas_info_enabled: 1,
        vegas_info_rtt_cnt: 0,
        vegas_info_rtt: 211,
        vegas_info_min_rtt: 0x7fffffff,
      }],
      ["6_6_44/attribute_skmeminfo", {
        sk_mem_info_rmem_alloc: 0,
        sk_mem_info_rcv_buf: 1000000,
        sk_mem_info_snd_buf: 2626560,
        sk_mem_info_drops: 0,
      }],
      ["6_6_44/attribute_sockopt", { sock_opt: 0x52 }],
      ["6_6_44/attribute_tcclass", { traffic_class: 2 }],
      ["6_6_44/attribute_tos2", { type_of_service: 2 }],
      ["6_6_44/attribute_shutdown", { shutdown_state: 0 }],
      ["4_19_319/attribute_meminfo_f4096", { mem_info_fmem: 4096, mem_info_rmem: 0 }],
      ["6_6_44/attribute_info", {
        tcp_info_state: 1,
        tcp_info_options: 31,
        tcp_info_send_scale: 9,
        tcp_info_rcv_scale: 9,
        tcp_info_delivery_rate_app_limited: 1,
        tcp_info_rto: 201000,
        tcp_info_ato: 40000,
        tcp_info_snd_mss: 32768,
        tcp_info_rcv_mss: 536,
      }],
    ];
    for (const [file, want] of cases) {
      const { rec, stats } = decodeAttr(attr(file));
      assert.equal(stats.attrErrors, 0, file);
      for (const [k, v] of Object.entries(want)) assert.equal(rec.get(k), v, `${file}: ${k}`);
    }
  },
});

Deno.test({
  ...fx,
  name: "tcp_info of every kernel length decodes the fields that length holds, no more",
  fn() {
    // [file, payload length, last present field, first absent field]
    const cases: [string, number, string, string | undefined][] = [
      ["4_19_319/attribute_info", 224, "tcp_info_reord_seen", "tcp_info_rcv_ooopack"],
      ["5_4_281/attribute_info", 232, "tcp_info_snd_wnd", "tcp_info_rcv_wnd"],
      ["5_15_164/attribute_info", 232, "tcp_info_snd_wnd", "tcp_info_rcv_wnd"],
      ["6_1_103/attribute_info", 232, "tcp_info_snd_wnd", "tcp_info_rcv_wnd"],
      ["6_6_44/attribute_info", 240, "tcp_info_rehash", "tcp_info_total_rto"],
      ["6_8_12/attribute_info", 248, "tcp_info_total_rto_time", undefined],
      ["6_10_3/attribute_info", 248, "tcp_info_total_rto_time", undefined],
    ];
    for (const [file, len, last, absent] of cases) {
      const bytes = attr(file);
      assert.equal((bytes[0] | (bytes[1] << 8)) - 4, len, `${file}: payload length`);
      const { rec } = decodeAttr(bytes);
      assert.ok(rec.has(last), `${file}: ${last} missing`);
      if (absent) assert.ok(!rec.has(absent), `${file}: ${absent} should be absent`);
    }
    // A longer (future) struct: the unknown tail is ignored.
    const info = attr("6_10_3/attribute_info");
    const long = new Uint8Array(4 + 280);
    long.set(info);
    long[0] = long.length & 0xff;
    long[1] = long.length >> 8;
    long.fill(0xee, info.length);
    const r = decodeAttr(long).rec;
    assert.equal(r.get("tcp_info_rtt"), decodeAttr(info).rec.get("tcp_info_rtt"));
    // A short (old-kernel) struct: fields past its end are absent, not zero and not garbage.
    const short = info.slice(0, 4 + 104);
    short[0] = short.length;
    short[1] = 0;
    const s = decodeAttr(short);
    assert.ok(s.rec.has("tcp_info_total_retrans"));
    assert.ok(!s.rec.has("tcp_info_pacing_rate"));
    assert.ok(!s.rec.has("tcp_info_delivered"));
    assert.equal(s.stats.attrShort, 1);
  },
});

Deno.test("disabled decoders skip their attributes; unknown attributes are skipped safely", () => {
  const dg = buildDatagram([{
    attrs: [
      [4, new TextEncoder().encode("cubic\0")],
      [5, new Uint8Array([7])],
      [30, new Uint8Array([1, 2, 3])], // unknown type
      [0x8000 | 5, new Uint8Array([9])], // NLA_F_NESTED bit: still TOS
    ],
  }]);
  const view = new SocketView();
  const stats = new ParseStats();
  let rec: Rec | undefined;
  parseDatagram(
    view,
    dg,
    new DataView(dg.buffer),
    0,
    dg.length,
    {
      mask: parseDeserializers("tos"),
      expectSeq: -1,
      expectPid: -1,
    },
    stats,
    (v) => (rec = viewToRec(v)),
  );
  assert.ok(rec);
  assert.equal(rec.has("congestion_algorithm_string"), false);
  assert.equal(rec.get("type_of_service"), 9);
  assert.equal(stats.attrSkipped, 2);
});

Deno.test("idiag_ext follows the enabled decoders", () => {
  assert.equal(idiagExt(parseDeserializers("default")), 0xfe);
  assert.equal(idiagExt(parseDeserializers("all")), 0xff);
  assert.equal(idiagExt(parseDeserializers("")), 0x00);
  assert.equal(idiagExt(parseDeserializers("meminfo,skmem")), 0x41);
  for (const cc of ["vegas", "dctcp", "bbr"]) {
    assert.equal(idiagExt(parseDeserializers(cc)) & 0x04, 0x04, cc);
  }
  assert.equal(idiagExt(parseDeserializers("classid,cgroup,sockopt")), 0);
  assert.equal(DECODER_NAMES.length, 13);
  assert.throws(() => parseDeserializers("info,bogus"), /Unknown deserializer "bogus"/);
});

Deno.test({
  ...fx,
  name: "the dump request is byte-identical to the captured originals (seq aside)",
  fn() {
    for (
      const f of [
        "4_19_319/netlink_sock_diag_request_single_packet_v4.pcap",
        "6_10_3/netlink_sock_diag_request_single_packet.pcap",
        "6_6_44/netlink_sock_diag_request_single_packet_v6.pcap",
      ]
    ) {
      const bytes = attr(f);
      const [p] = [...pcapPackets(bytes, f)];
      const captured = bytes.subarray(p.offset, p.end);
      assert.equal(captured.length, 72, f);
      const dv = new DataView(captured.buffer, captured.byteOffset, 72);
      const ours = new Uint8Array(72);
      writeDumpRequest(ours, 0, {
        family: captured[16],
        ext: captured[18],
        seq: dv.getUint32(8, true),
        states: dv.getUint32(20, true),
      });
      assert.deepEqual(ours, captured.slice(), f);
      assert.deepEqual([...captured.subarray(20, 24)], [0xff, 0x3f, 0, 0], `${f}: all TCP states`);
    }
    const def = new Uint8Array(72);
    writeDumpRequest(def, 0, { family: 10, ext: 0xfe, seq: 666 });
    assert.deepEqual([...def.subarray(0, 24)], [
      72,
      0,
      0,
      0,
      20,
      0,
      0x01,
      0x03,
      0x9a,
      0x02,
      0,
      0,
      0,
      0,
      0,
      0,
      10,
      6,
      0xfe,
      0,
      0xff,
      0x3f,
      0,
      0,
    ]);
  },
});

Deno.test("kernel errors and broken framing become typed errors", () => {
  const view = new SocketView();
  const stats = new ParseStats();
  const opts = { mask: -1, expectSeq: -1, expectPid: -1, source: "t" };
  const run = (b: Uint8Array) =>
    parseDatagram(view, b, new DataView(b.buffer), 0, b.length, opts, stats, () => {});
  // NLMSG_ERROR with -EPERM.
  const err = new Uint8Array(36);
  const dv = new DataView(err.buffer);
  dv.setUint32(0, 36, true);
  dv.setUint16(4, 2, true);
  dv.setInt32(16, -1, true);
  assert.throws(() => run(err), (e: unknown) => e instanceof NetlinkError && e.code === "EPERM");
  // NLMSG_DONE carrying -ENOBUFS.
  const done = new Uint8Array(20);
  const ddv = new DataView(done.buffer);
  ddv.setUint32(0, 20, true);
  ddv.setUint16(4, 3, true);
  ddv.setInt32(16, -105, true);
  assert.throws(() => run(done), (e: unknown) => e instanceof NetlinkError && e.code === "ENOBUFS");
  // An ACK (error 0) is not an error.
  dv.setInt32(16, 0, true);
  assert.equal(run(err), 0);
  // nlmsg_len past the datagram, and a header cut short.
  const bad = buildDatagram([{}]);
  new DataView(bad.buffer).setUint32(0, 5000, true);
  assert.throws(() => run(bad), (e: unknown) => e instanceof DecodeError && e.offset === 0);
  assert.throws(() => run(buildDatagram([{}]).slice(0, 10)), DecodeError);
  // A message too short for inet_diag_msg is counted, not decoded.
  const short = buildDatagram([{ header: new Uint8Array(40) }]);
  assert.equal(run(short), 0);
  assert.ok(stats.shortInetDiagMsg >= 1);
});

Deno.test("seq and pid are validated; DONE ends the datagram; DUMP_INTR is reported", () => {
  const view = new SocketView();
  const stats = new ParseStats();
  const dg = buildDatagram([{}, {}, { flags: 0x2 | 0x10 }], true, 7, 1234);
  const run = (seq: number, pid: number) => {
    let n = 0;
    const st = parseDatagram(
      view,
      dg,
      new DataView(dg.buffer),
      0,
      dg.length,
      {
        mask: -1,
        expectSeq: seq,
        expectPid: pid,
      },
      stats,
      () => n++,
    );
    return { n, st };
  };
  assert.deepEqual(run(7, 1234), { n: 3, st: 3 }); // DONE | INTR
  assert.deepEqual(run(8, 1234), { n: 0, st: 0 }); // every message of another dump skipped
  assert.ok(stats.seqMismatch >= 4);
  assert.deepEqual(run(7, 99), { n: 0, st: 0 });
  assert.ok(stats.pidMismatch >= 4);
});

Deno.test("record_counter is the index within the datagram", () => {
  const dg = buildDatagram([{}, {}, {}]);
  const view = new SocketView();
  const enc = new RecordEncoder();
  const out = new OutBuf(64);
  const idx: number[] = [];
  parseDatagram(
    view,
    dg,
    new DataView(dg.buffer),
    0,
    dg.length,
    { mask: -1, expectSeq: -1, expectPid: -1 },
    new ParseStats(),
    (v) => {
      idx.push(Number(viewToRec(v, new Stamp({})).get("record_counter") ?? 0));
      enc.encode(v, new Stamp({}), out);
    },
  );
  assert.deepEqual(idx, [0, 1, 2]);
});

Deno.test("framing errors are counted by kind, under the original's Deserialize triples", () => {
  const dumper = new Dumper({ mask: parseDeserializers("all"), ext: 0xff });
  const stats = dumper.stats;
  const view = new SocketView();
  const parse = (dg: Uint8Array) => {
    try {
      parseDatagram(
        view,
        dg,
        new DataView(dg.buffer),
        0,
        dg.length,
        { mask: parseDeserializers("all"), expectSeq: -1, expectPid: -1 },
        stats,
        () => {},
      );
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
    }
  };
  const withAttrLen = (rtaLen: number) => {
    const dg = buildDatagram([{ attrs: [[5, new Uint8Array([7, 0, 0, 0])]] }]);
    new DataView(dg.buffer).setUint16(16 + 72, rtaLen, true);
    return dg;
  };
  parse(withAttrLen(2)); // below the attribute header
  parse(withAttrLen(200)); // past the message
  const stray = withAttrLen(4); // a 4-byte attribute, then 2 bytes that hold no header
  new DataView(stray.buffer).setUint32(0, 16 + 72 + 6, true);
  parse(stray);
  parse(buildDatagram([{}]).slice(0, 10)); // a header cut short
  const tooSmall = buildDatagram([{}]);
  new DataView(tooSmall.buffer).setUint32(0, 8, true);
  parse(tooSmall);
  const overflow = buildDatagram([{}]);
  new DataView(overflow.buffer).setUint32(0, 5000, true);
  parse(overflow);
  parse(buildDatagram([{ header: new Uint8Array(40) }])); // too short for inet_diag_msg
  assert.deepEqual(
    [stats.attrLenTooSmall, stats.attrLenOverflow, stats.attrTruncatedHeader, stats.attrErrors],
    [1, 1, 1, 3],
  );
  assert.deepEqual([stats.truncatedHeader, stats.nlmsgLenTooSmall, stats.nlmsgLenOverflow], [
    1,
    1,
    1,
  ]);
  const counters = new Counters();
  const counts = new NetlinkCounts(counters);
  counts.received(dumper, false);
  counts.decoded(stats);
  counts.received(dumper, false); // nothing new: nothing added twice
  counts.decoded(stats);
  const got = Object.fromEntries([...counters.values].filter(([k]) => /Deserialize/.test(k)));
  assert.deepEqual(got, {
    "Deserialize/start/count": 7,
    "Deserialize/inetDiagNlhLenTooSmall/error": 1,
    "Deserialize/truncatedAtHeader/error": 1,
    "Deserialize/DeserializeNlMsgHdr/error": 1,
    "Deserialize/inetDiagNlhLenOverflow/error": 1,
    "DeserializeAttributes/rtaLenTooSmall/error": 1,
    "DeserializeAttributes/rtaLenOverflow/error": 1,
    "DeserializeAttributes/truncatedRTAttrHeader/error": 1,
  });
  assert.equal(counters.get("Netlinker", "packets"), 7);
  assert.equal(counters.get("Netlinker", "p"), 3);
});
