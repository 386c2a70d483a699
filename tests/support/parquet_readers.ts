/**
 * Reads xtcp2's Parquet objects with readers that are not ours, in a process of its own (libchdb
 * and DuckDB start threads and signal handlers of their own): ClickHouse (chdb) from local files
 * (`file()`) or straight from S3 (`s3()`), and DuckDB (`read_parquet(…, hive_partitioning =
 * true)`). Each value comes back as text: 64-bit integers in decimal, byte columns in hex.
 *
 * Usage: parquet_readers.ts JSON, where JSON is
 * `{ reader: "chdb-file" | "chdb-s3" | "duckdb", source, columns, order, lib?, scratch?,
 *    accessKey?, secretKey? }`; prints `{ count, rows, types, extra }` (extra: the hive
 * partition columns DuckDB saw, the `_path` and `_size` of each S3 object ClickHouse read).
 */
import { Chdb } from "../../ffi/chdb.ts";
import { answerAndExit } from "./chdb_answer.ts";

interface Ask {
  reader: "chdb-file" | "chdb-s3" | "duckdb";
  /** A glob of local files, or the S3 URL of a glob of keys. */
  source: string;
  /** Columns to return, each a [name, kind] with kind "bytes" for hex. */
  columns: [string, string][];
  order: string;
  lib?: string;
  scratch?: string;
  accessKey?: string;
  secretKey?: string;
  /** duckdb: the keys are hive partitions (host=…/date=…/hour=…): return them as `extra`. */
  hive?: boolean;
  /** duckdb: these columns' statistics of every row group as `extra` (name, min, max, nulls). */
  stats?: string[];
}

const ask: Ask = JSON.parse(Deno.args[0] ?? "{}");
const quote = (s: string) => `'${s.replaceAll("'", "\\'")}'`;

if (ask.reader === "duckdb") {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  const src = `read_parquet(${quote(ask.source)}, hive_partitioning = true)`;
  const cols = ask.columns.map((
    [n, k],
  ) => (k === "bytes" ? `hex("${n}")` : `CAST("${n}" AS VARCHAR)`));
  const all = async (sql: string) =>
    (await c.runAndReadAll(sql)).getRows().map((r) => r.map(String));
  const count = Number((await all(`SELECT count(*) FROM ${src}`))[0]?.[0]);
  const rows = await all(`SELECT ${cols.join(", ")} FROM ${src} ORDER BY ${ask.order}`);
  const types = Object.fromEntries(
    (await all(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${src})`)).map((
      [n, t],
    ) => [n, t]),
  );
  const extra = ask.stats
    ? await all(
      `SELECT path_in_schema, stats_min_value, stats_max_value, stats_null_count FROM parquet_metadata(${
        quote(ask.source)
      }) WHERE path_in_schema IN (${ask.stats.map(quote).join(", ")})`,
    )
    : !ask.hive
    ? []
    : await all(
      `SELECT DISTINCT host, CAST(date AS VARCHAR), CAST(hour AS VARCHAR) FROM ${src} ORDER BY ALL`,
    );
  c.closeSync();
  console.log(JSON.stringify({ count, rows, types, extra }));
} else {
  const ch = new Chdb(ask.lib ?? "", ask.scratch ?? "");
  const src = ask.reader === "chdb-s3"
    ? `s3(${quote(ask.source)}, ${quote(ask.accessKey ?? "")}, ${
      quote(ask.secretKey ?? "")
    }, 'Parquet')`
    : `file(${quote(ask.source)}, 'Parquet')`;
  const cols = ask.columns.map(([n, k]) => (k === "bytes" ? `hex(${n})` : `toString(${n})`));
  const lines = (sql: string) =>
    ch.query(sql).split("\n").filter((l) => l).map((l) => l.split("\t"));
  const count = Number(ch.query(`SELECT count() FROM ${src}`).trim());
  const rows = lines(`SELECT ${cols.join(", ")} FROM ${src} ORDER BY ${ask.order}`);
  const types = Object.fromEntries(lines(`DESCRIBE ${src}`).map(([n, t]) => [n, t]));
  const extra = ask.reader === "chdb-s3"
    ? lines(`SELECT _path, any(_size), count() FROM ${src} GROUP BY _path ORDER BY _path`)
    : [];
  answerAndExit({ count, rows, types, extra });
}
