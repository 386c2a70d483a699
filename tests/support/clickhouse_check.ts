/**
 * Runs the ClickHouse side of tests/clickhouse_test.ts in its own process (libchdb starts
 * ClickHouse's threads and signal handlers; keeping it out of the test runner keeps the runner
 * sane). Usage: clickhouse_check.ts LIB PROTO DIR_OF_BINPB SCRATCH; prints one JSON object.
 */
import { Chdb } from "../../ffi/chdb.ts";
import { answerAndExit } from "./chdb_answer.ts";
import { clickhouseDdl } from "../../src/record/clickhouse.ts";

const [lib, proto, dir, scratch] = Deno.args;
const ch = new Chdb(lib, scratch);
const src =
  `file('${dir}/*.binpb', 'ProtobufList') SETTINGS format_schema = '${proto}:XtcpFlatRecord'`;
const count = Number(ch.query(`SELECT count() FROM ${src}`));
const rows = ch.query(
  `SELECT inet_diag_msg_socket_cookie, netns, label, tcp_info_rtt, tcp_info_bytes_acked, congestion_algorithm_string,
          congestion_algorithm_enum, tcp_info_total_rto, sk_mem_info_rcv_buf, inet_diag_msg_socket_source_port
   FROM ${src}`,
).trimEnd().split("\n").map((l) => l.split("\t"));
// The shipped DDL, with the Kafka engine swapped for Null (no broker here) and the Kafka-only
// error routing left out; our bytes are inserted where Kafka would put them.
const ddl = clickhouseDdl().split(";\n\n").map((s) => s.trim().replace(/;$/, "")).filter((s) => s)
  .filter((s) => !s.includes("xtcp_flat_records_errors_mv"))
  .map((s) =>
    s.replace(/ENGINE = Kafka\nSETTINGS[\s\S]*$/, "ENGINE = Null").replaceAll(
      " AND length(_error) = 0",
      "",
    )
  );
for (const stmt of ddl) ch.query(stmt);
for (const e of Deno.readDirSync(dir)) {
  const head = new TextEncoder().encode(
    `INSERT INTO xtcp.xtcp_flat_records_kafka SETTINGS format_schema = '${proto}:XtcpFlatRecord' FORMAT ProtobufList\n`,
  );
  const body = Deno.readFileSync(`${dir}/${e.name}`);
  const q = new Uint8Array(head.length + body.length);
  q.set(head);
  q.set(body, head.length);
  ch.queryBytes(q);
}
answerAndExit({
  count,
  rows,
  v1: Number(ch.query("SELECT count() FROM xtcp.xtcp_flat_records_v1")),
  v0: Number(ch.query("SELECT count() FROM xtcp.xtcp_flat_records_v0")),
  merged: Number(ch.query("SELECT count() FROM xtcp.xtcp_flat_records")),
  ts: ch.query(
    "SELECT min(timestamp_ns) > now() - INTERVAL 1 HOUR, max(timestamp_ns) <= now64(9) FROM xtcp.xtcp_flat_records",
  ).trim(),
});
