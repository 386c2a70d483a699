/**
 * The ClickHouse side of the Kafka end-to-end test, in its own process (see clickhouse_check.ts):
 * creates the shipped DDL (clickhouse/xtcp.sql, generated) pointed at the given broker and topic,
 * lets ClickHouse's Kafka engine consume, and prints one JSON object with the row counts.
 * Usage: clickhouse_kafka_check.ts LIB PROTO BROKER TOPIC SCRATCH EXPECTED
 */
import { Chdb } from "../../ffi/chdb.ts";
import { answerAndExit } from "./chdb_answer.ts";
import { clickhouseDdl } from "../../src/record/clickhouse.ts";

const [lib, proto, broker, topic, scratch, expected] = Deno.args;
const ch = new Chdb(lib, scratch);
// A server finds the schema by name in its format_schema_path; here it is given by path.
const ddl = clickhouseDdl().split(";\n\n").map((s) => s.trim().replace(/;$/, "")).filter((s) => s)
  .map((s) =>
    s.replace("kafka_broker_list = 'redpanda-0:9092'", `kafka_broker_list = '${broker}'`)
      .replace("kafka_topic_list = 'xtcp'", `kafka_topic_list = '${topic}'`)
      .replace(
        "kafka_schema = 'xtcp_flat_record.proto:XtcpFlatRecord'",
        `kafka_schema = '${proto}:XtcpFlatRecord'`,
      )
  );
for (const stmt of ddl) ch.query(stmt);
const count = (t: string) => Number(ch.query(`SELECT count() FROM xtcp.${t}`));
const deadline = Date.now() + 60_000;
while (count("xtcp_flat_records_v1") < Number(expected) && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 250));
}
answerAndExit({
  v1: count("xtcp_flat_records_v1"),
  v0: count("xtcp_flat_records_v0"),
  errors: count("xtcp_flat_records_errors"),
  merged: count("xtcp_flat_records"),
  hosts: ch.query(
    "SELECT uniqExact(hostname), countIf(tcp_info_rtt > 0) > 0 FROM xtcp.xtcp_flat_records",
  )
    .trim(),
});
