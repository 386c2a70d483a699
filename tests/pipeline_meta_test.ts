/**
 * What crosses the pipeline's ring intact: a sequence number or port id above 2^31 (slot
 * metadata read as unsigned words: a value that turned negative would disable the worker's
 * seq/pid check), fed to the real Pipeline and its worker as a datagram the kernel really sent;
 * the counters of a destination the worker owns, up to the daemon's /metrics. And the capture
 * files, private to their owner.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { NETLINK_SOCK_DIAG, pcapPackets } from "../src/netlink/pcap.ts";
import { Pipeline } from "../src/poll/pipeline.ts";
import { Stamp } from "../src/record/stamp.ts";
import { ownCaptures } from "./support/fixtures.ts";
import { unframe } from "./support/records.ts";
import { sample, scrape, startDaemon } from "./support/daemon.ts";
import { freePort, until, xtcp2 } from "./support/run.ts";

const SOCK_DIAG_BY_FAMILY = 20;

/** The captured reply datagram with the most inet_diag messages, and their number. */
function capturedReply(): { dg: Uint8Array; sockets: number } {
  const pcap = ownCaptures()[0]?.pcap;
  assert.ok(pcap, "no capture in tests/captures");
  const bytes = Deno.readFileSync(pcap);
  let best = { dg: new Uint8Array(0), sockets: 0 };
  for (const p of pcapPackets(bytes, pcap)) {
    if (p.protocol !== NETLINK_SOCK_DIAG) continue;
    const dg = bytes.slice(p.offset, p.end);
    const dv = new DataView(dg.buffer);
    let sockets = 0;
    for (let off = 0; off + 16 <= dg.length;) {
      const len = dv.getUint32(off, true);
      if (len < 16) break;
      if (dv.getUint16(off + 4, true) === SOCK_DIAG_BY_FAMILY && (dg[off + 6] & 1) === 0) {
        sockets++;
      }
      off += (len + 3) & ~3;
    }
    if (sockets > best.sockets) best = { dg, sockets };
  }
  assert.ok(best.sockets >= 10, `only ${best.sockets} sockets in the best captured datagram`);
  return best;
}

/** A copy of `dg` with every message's nlmsg_seq and nlmsg_pid set. */
function readdressed(dg: Uint8Array, seq: number, pid: number): Uint8Array {
  const out = dg.slice();
  const dv = new DataView(out.buffer);
  for (let off = 0; off + 16 <= out.length;) {
    const len = dv.getUint32(off, true);
    dv.setUint32(off + 8, seq, true);
    dv.setUint32(off + 12, pid, true);
    if (len < 16) break;
    off += (len + 3) & ~3;
  }
  return out;
}

/**
 * One poll through the real Pipeline and its worker: `dg` published with the expected seq and
 * pid, as the receiving thread does; the rows of every envelope the worker flushed.
 */
async function pipelineRows(dg: Uint8Array, expectSeq: number, expectPid: number) {
  const flushed: Uint8Array[] = [];
  const pipe = new Pipeline({
    slots: 4,
    slotSize: 64 * 1024,
    mask: -1,
    rows: { changesOnly: false, snapshotEvery: 0, socketOwners: false, socketOwnersBudgetMs: 100 },
    marshal: "protobufList",
    columns: "",
    onEnvelope: (m) => {
      if (m.bytes) flushed.push(m.bytes);
    },
  });
  try {
    await pipe.ready();
    pipe.configure(10_000, 1 << 20, 1, false);
    pipe.stamp(new Stamp({ netns: "pipeline-meta", hostname: "h" }), 1);
    const { u8 } = pipe.acquire();
    u8.set(dg);
    pipe.publish(dg.length, expectSeq, expectPid);
    const polled = await pipe.endPoll("poll_end");
    assert.deepEqual(polled.decodeErrors, []);
    const rows = flushed.flatMap((b) => fromBinary(EnvelopeSchema, unframe(b)).row);
    assert.ok(rows.every((r) => r.netns === "pipeline-meta"));
    return rows.length;
  } finally {
    pipe.close();
  }
}

Deno.test({
  name:
    "pipeline: a seq and a port id above 2^31 cross the ring unsigned: the worker still rejects a mismatch and accepts a match",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { dg, sockets } = capturedReply();
    const SEQ = 0x9000_0000;
    const PID = 0xffff_f000; // the kernel's autobind hands out port ids from -4096 down
    const high = readdressed(dg, SEQ, PID);
    assert.equal(await pipelineRows(high, SEQ, PID), sockets, "matching seq and pid: every row");
    assert.equal(await pipelineRows(high, SEQ + 1, PID), 0, "seq 0x90000001 expected: no row");
    assert.equal(await pipelineRows(high, SEQ, PID - 1), 0, "another port id expected: no row");
    // The same check below 2^31, where a signed word never went wrong.
    const low = readdressed(dg, 700, 4242);
    assert.equal(await pipelineRows(low, 700, 4242), sockets);
    assert.equal(await pipelineRows(low, 701, 4242), 0);
  },
});

Deno.test({
  name:
    "pipeline: counters of the destination the worker writes (file:) reach the daemon's /metrics",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "xtcp2_pipeline_meta_" });
    try {
      await using d = startDaemon([
        "-pipeline",
        "-frequency",
        "1s",
        "-timeout",
        "900ms",
        "-dest",
        `file:${dir}/out`,
        "-marshal",
        "protobufList",
      ]);
      let files = 0;
      await until("destFile/files on /metrics", async () => {
        try {
          const m = await scrape(d.httpPort);
          files = sample(
            m.text,
            "xtcp_counts",
            'function="destFile",variable="files",type="count"',
          );
        } catch { /* not listening yet */ }
        return files >= 2;
      }, 30_000);
      // Counted by the worker, one per protobufList file it wrote.
      const written = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("out"));
      assert.ok(written.length >= files, `${written.length} files written, ${files} counted`);
      const { code } = await d.stop();
      assert.equal(code, 0, d.log());
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "--writeFiles capture files are created mode 0600 (they show every connection of the host)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "xtcp2_capture_mode_" });
    try {
      const r = await xtcp2([
        "-maxLoops",
        "1",
        "-dest",
        "null",
        "-writeFiles",
        "20",
        "-capturePath",
        `${dir}/cap-`,
        "-promListen",
        `127.0.0.1:${freePort()}`,
        "-grpcPort",
        String(freePort()),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const captures = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.equal(captures.length, 1, captures.join());
      const st = Deno.statSync(`${dir}/${captures[0]}`);
      assert.ok(st.size > 24, "the capture holds datagrams, not only the pcap header");
      const mode = (st.mode ?? 0) & 0o777;
      assert.equal(mode, 0o600, `mode ${mode.toString(8)}`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
