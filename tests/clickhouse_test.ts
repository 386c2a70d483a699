/**
 * ClickHouse proves the output: its engine (libchdb, loaded through FFI) reads the daemon's
 * protobufList files with the project's .proto (row count and sampled values equal the records),
 * and the shipped DDL creates the tables into which our output is inserted and routed by epoch.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  type XtcpFlatRecord,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { Chdb } from "../ffi/chdb.ts";
import { clickhouseDdl } from "../src/record/clickhouse.ts";
import { startLoad } from "../bench/loadgen.ts";
import { xtcp2 } from "./support/run.ts";

const LIB = Deno.env.get("XTCP2_CHDB_LIB") ??
  new URL("../.deps/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so", import.meta.url)
    .pathname;
const PROTO =
  new URL("../proto/xtcp_flat_record/v1/xtcp_flat_record.proto", import.meta.url).pathname;
const HAVE = (() => {
  try {
    Deno.statSync(LIB);
    return true;
  } catch {
    console.warn(
      `\n!!! SKIPPING ClickHouse tests: ${LIB} is absent (./quickstart.sh test installs it)\n`,
    );
    return false;
  }
})();

function unframe(b: Uint8Array): Uint8Array {
  let i = 0;
  while (b[i] & 0x80) i++;
  return b.subarray(i + 1);
}

Deno.test({
  name: "ClickHouse reads the daemon's protobufList output: row count and sampled values equal",
  ignore: !HAVE,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 100 });
    const dir = Deno.makeTempDirSync();
    try {
      const r = await xtcp2([
        "-maxLoops",
        "1",
        "-pollJitterPct",
        "0",
        "-deserializers",
        "all",
        "-envelopeFlushRows",
        "150",
        "-dest",
        `file:${dir}/out/xtcp`,
        "-marshal",
        "protobufList",
        "-label",
        "ch-test",
      ], { prefix: ["ip", "netns", "exec", load.netns] });
      assert.equal(r.code, 0, r.stderr);
      const files = [...Deno.readDirSync(`${dir}/out`)].map((e) => `${dir}/out/${e.name}`);
      assert.ok(files.length >= 3, "several envelopes, one per file");
      const rows: XtcpFlatRecord[] = files.flatMap((f) =>
        fromBinary(EnvelopeSchema, unframe(Deno.readFileSync(f))).row
      );
      using ch = new Chdb(LIB, `${dir}/ch`);
      const src =
        `file('${dir}/out/*.binpb', 'ProtobufList') SETTINGS format_schema = '${PROTO}:XtcpFlatRecord'`;
      assert.equal(Number(ch.query(`SELECT count() FROM ${src}`)), rows.length);
      const got = ch.query(
        `SELECT inet_diag_msg_socket_cookie, netns, label, tcp_info_rtt, tcp_info_bytes_acked, congestion_algorithm_string,
                congestion_algorithm_enum, tcp_info_total_rto, sk_mem_info_rcv_buf, inet_diag_msg_socket_source_port
         FROM ${src}`,
      ).trimEnd().split("\n").map((l) => l.split("\t"));
      const byCookie = new Map(rows.map((r) => [`${r.netns}/${r.inetDiagMsgSocketCookie}`, r]));
      assert.equal(got.length, rows.length);
      for (const [cookie, netns, label, rtt, acked, cc, ccEnum, totalRto, rcvBuf, sport] of got) {
        const r = byCookie.get(`${netns}/${cookie}`);
        assert.ok(r, `ClickHouse row ${netns}/${cookie} not among our records`);
        assert.equal(label, "ch-test");
        assert.equal(Number(rtt), r.tcpInfoRtt);
        assert.equal(BigInt(acked), r.tcpInfoBytesAcked);
        assert.equal(cc, r.congestionAlgorithmString);
        assert.ok(ccEnum.startsWith("CONGESTION_ALGORITHM_"));
        assert.equal(totalRto, r.tcpInfoTotalRto === undefined ? "\\N" : String(r.tcpInfoTotalRto));
        assert.equal(Number(rcvBuf), r.skMemInfoRcvBuf);
        assert.equal(Number(sport), r.inetDiagMsgSocketSourcePort);
      }

      // The shipped DDL, with the Kafka engine swapped for Null (no broker here) and the
      // Kafka-only error routing left out; our bytes are inserted where Kafka would put them.
      const ddl = clickhouseDdl().split(";\n\n").map((s) => s.trim().replace(/;$/, "")).filter((
        s,
      ) => s)
        .filter((s) => !s.includes("xtcp_flat_records_errors_mv"))
        .map((s) =>
          s.replace(/ENGINE = Kafka\nSETTINGS[\s\S]*$/, "ENGINE = Null").replaceAll(
            " AND length(_error) = 0",
            "",
          )
        );
      for (const stmt of ddl) ch.query(stmt);
      for (const f of files) {
        const head = new TextEncoder().encode(
          `INSERT INTO xtcp.xtcp_flat_records_kafka SETTINGS format_schema = '${PROTO}:XtcpFlatRecord' FORMAT ProtobufList\n`,
        );
        const body = Deno.readFileSync(f);
        const q = new Uint8Array(head.length + body.length);
        q.set(head);
        q.set(body, head.length);
        ch.queryBytes(q);
      }
      assert.equal(Number(ch.query("SELECT count() FROM xtcp.xtcp_flat_records_v1")), rows.length);
      assert.equal(Number(ch.query("SELECT count() FROM xtcp.xtcp_flat_records_v0")), 0);
      assert.equal(Number(ch.query("SELECT count() FROM xtcp.xtcp_flat_records")), rows.length);
      const ts = ch.query(
        "SELECT min(timestamp_ns) > now() - INTERVAL 1 HOUR, max(timestamp_ns) <= now64(9) FROM xtcp.xtcp_flat_records",
      );
      assert.equal(ts.trim(), "1\t1", "timestamp_ns lands as a real DateTime64(9)");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("the committed clickhouse/xtcp.sql is the generated DDL (deno task ddl)", () => {
  const committed = Deno.readTextFileSync(new URL("../clickhouse/xtcp.sql", import.meta.url));
  assert.equal(committed.trimEnd(), clickhouseDdl().trimEnd());
});
