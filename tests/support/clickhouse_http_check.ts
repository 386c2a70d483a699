/**
 * The ClickHouse side of the http: test, in its own process (see clickhouse_check.ts): creates the
 * shipped DDL (Kafka engine swapped for Null: no broker here) and runs each request the test's
 * HTTP server received as ClickHouse's HTTP interface would: the `query` parameter is the
 * statement, the other parameters are settings, the body is the data. Prints one JSON object:
 * the rows that landed in the Merge table, each as `netns_inode/cookie/timestamp_ns/rtt/port`.
 * Usage: clickhouse_http_check.ts LIB DIR SCRATCH; DIR holds N.url (the request URL) and N.body.
 */
import { Chdb } from "../../ffi/chdb.ts";
import { answerAndExit } from "./chdb_answer.ts";
import { clickhouseDdl } from "../../src/record/clickhouse.ts";

const [lib, dir, scratch] = Deno.args;
const ch = new Chdb(lib, scratch);
const ddl = clickhouseDdl().split(";\n\n").map((s) => s.trim().replace(/;$/, "")).filter((s) => s)
  .filter((s) => !s.includes("xtcp_flat_records_errors_mv"))
  .map((s) =>
    s.replace(/ENGINE = Kafka\nSETTINGS[\s\S]*$/, "ENGINE = Null").replaceAll(
      " AND length(_error) = 0",
      "",
    )
  );
for (const stmt of ddl) ch.query(stmt);
const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".url"));
for (const name of names) {
  const url = new URL(Deno.readTextFileSync(`${dir}/${name}`));
  const query = url.searchParams.get("query") ?? "";
  const settings = [...url.searchParams].filter(([k]) => k !== "query")
    .map(([k, v]) => `${k} = '${v.replaceAll("'", "\\'")}'`).join(", ");
  const statement = settings ? query.replace(/ FORMAT /, ` SETTINGS ${settings} FORMAT `) : query;
  const head = new TextEncoder().encode(`${statement}\n`);
  const body = Deno.readFileSync(`${dir}/${name.replace(/\.url$/, ".body")}`);
  const q = new Uint8Array(head.length + body.length);
  q.set(head);
  q.set(body, head.length);
  ch.queryBytes(q);
}
const rows = ch.query(
  `SELECT netns_inode, inet_diag_msg_socket_cookie, toUnixTimestamp64Nano(timestamp_ns), tcp_info_rtt,
          inet_diag_msg_socket_source_port
   FROM xtcp.xtcp_flat_records`,
).trimEnd().split("\n").filter((l) => l).map((l) => l.split("\t").join("/"));
answerAndExit({
  requests: names.length,
  rows,
  v1: Number(ch.query("SELECT count() FROM xtcp.xtcp_flat_records_v1")),
});
