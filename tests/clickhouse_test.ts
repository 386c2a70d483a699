/**
 * ClickHouse proves the output: its engine (libchdb, loaded through FFI) reads the daemon's
 * protobufList files with the project's .proto (row count and sampled values equal the records),
 * and the shipped DDL creates the tables into which our output is inserted and routed by epoch;
 * end to end, ClickHouse's Kafka engine consumes what the daemon produced to a Kafka broker.
 */
import assert from "node:assert/strict";
import { askChdb } from "./support/chdb_answer.ts";
import { unframe } from "./support/records.ts";
import { fromBinary } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  type XtcpFlatRecord,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { clickhouseDdl } from "../src/record/clickhouse.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { EVERY_SECOND, xtcp2 } from "./support/run.ts";
import { RDKAFKA, startMockKafka } from "./support/kafka_mock.ts";

const CHECK = new URL("./support/clickhouse_check.ts", import.meta.url).pathname;
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
      const ch = await askChdb<{
        count: number;
        rows: string[][];
        v1: number;
        v0: number;
        merged: number;
        ts: string;
      }>(CHECK, [LIB, PROTO, `${dir}/out`, `${dir}/ch`]);
      assert.equal(ch.count, rows.length);
      const byCookie = new Map(rows.map((r) => [`${r.netns}/${r.inetDiagMsgSocketCookie}`, r]));
      assert.equal(ch.rows.length, rows.length);
      for (
        const [cookie, netns, label, rtt, acked, cc, ccEnum, totalRto, rcvBuf, sport] of ch.rows
      ) {
        const r = byCookie.get(`${netns}/${cookie}`);
        assert.ok(r, `ClickHouse row ${netns}/${cookie} not among our records`);
        assert.equal(label, "ch-test");
        assert.equal(Number(rtt), r.tcpInfoRtt);
        assert.equal(BigInt(acked), r.tcpInfoBytesAcked);
        assert.equal(cc, r.congestionAlgorithmString);
        assert.ok(ccEnum.startsWith("CONGESTION_ALGORITHM_"));
        assert.equal(Number(totalRto), r.tcpInfoTotalRto ?? 0);
        assert.equal(Number(rcvBuf), r.skMemInfoRcvBuf);
        assert.equal(Number(sport), r.inetDiagMsgSocketSourcePort);
      }
      assert.equal(ch.v1, rows.length, "rows routed to xtcp_flat_records_v1 by schema_version");
      assert.equal(ch.v0, 0);
      assert.equal(ch.merged, rows.length, "the Merge table sees every epoch");
      assert.equal(ch.ts, "1\t1", "timestamp_ns lands as a real DateTime64(9)");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("the committed clickhouse/xtcp.sql is the generated DDL (deno task ddl)", () => {
  const committed = Deno.readTextFileSync(new URL("../clickhouse/xtcp.sql", import.meta.url));
  assert.equal(committed.trimEnd(), clickhouseDdl().trimEnd());
});

const KAFKA_CHECK = new URL("./support/clickhouse_kafka_check.ts", import.meta.url).pathname;

Deno.test({
  name:
    "ClickHouse's Kafka engine consumes the daemon's Kafka records through the shipped DDL (mock broker): every socket lands in xtcp_flat_records_v1, no errors",
  ignore: !HAVE || (() => {
    try {
      Deno.statSync(RDKAFKA);
      return false;
    } catch {
      console.warn(`\n!!! SKIPPING the Kafka → ClickHouse test: ${RDKAFKA} is absent\n`);
      return true;
    }
  })(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using _load = await startLoad({ conns: 100, bytes: 100 });
    await using mock = await startMockKafka(["xtcp-ch"]);
    const r = await xtcp2([
      "-maxLoops",
      "2",
      ...EVERY_SECOND,
      "-dest",
      `kafka:${mock.bootstrap}`,
      "-topic",
      "xtcp-ch",
      "-marshal",
      "protobufList",
      "-envelopeFlushRows",
      "100", // several records per poll
    ]);
    assert.equal(r.code, 0, r.stderr);
    const sent = [...r.stderr.matchAll(/poll \d+: \d+ namespaces, (\d+) sockets/g)]
      .reduce((n, m) => n + Number(m[1]), 0);
    assert.ok(sent >= 400, r.stderr);
    const dir = Deno.makeTempDirSync();
    try {
      const res = await askChdb<Record<string, unknown>>(KAFKA_CHECK, [
        LIB,
        PROTO,
        mock.bootstrap,
        "xtcp-ch",
        `${dir}/ch`,
        String(sent),
      ]);
      assert.equal(res.v1, sent, JSON.stringify(res));
      assert.equal(res.v0, 0);
      assert.equal(res.errors, 0);
      assert.equal(res.merged, sent);
      assert.equal(res.hosts, "1\t1"); // one host, and tcp_info values came through
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
