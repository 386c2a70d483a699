/**
 * ClickHouse DDL for xtcp2 records, generated from the field table: the Kafka-engine table
 * (ProtobufList), MergeTree tables by `schema_version`, materialized views routing rows by
 * epoch, the errors table, and the Merge table over every epoch (reference §2.3); and a Null
 * table with the same views for the `http:` destination's inserts (`INSERT INTO
 * xtcp.xtcp_flat_records_http FORMAT ProtobufList`).
 *
 * @module
 */
import { CONGESTION_ALGORITHM_NAMES, FIELDS, type FieldSpec } from "./fields.ts";

function columnType(f: FieldSpec, stored: boolean): string {
  // ProtobufList reads int64 into DateTime64 as seconds: the Kafka table keeps the raw ns and
  // the materialized views convert them.
  if (f.name === "timestamp_ns" && stored) return "DateTime64(9, 'UTC')";
  let t: string;
  switch (f.type) {
    case "uint32":
      t = "UInt32";
      break;
    case "uint64":
      t = "UInt64";
      break;
    case "int64":
      t = "Int64";
      break;
    case "string":
    case "bytes":
      t = "String";
      break;
    case "bool":
      t = "Bool";
      break;
    case "enum":
      t = `Enum8(${CONGESTION_ALGORITHM_NAMES.map((n, i) => `'${n}' = ${i}`).join(", ")})`;
      break;
  }
  // proto3 optional fields stay plain columns: ClickHouse's ProtobufList reader fills an absent
  // optional field with 0 even in a Nullable column (verified with chdb 26.7).
  return t;
}

/** The column list of the record tables (`stored`: the MergeTree tables, else the Kafka table). */
export function columns(stored: boolean): string {
  return FIELDS.map((f) => `  ${f.name} ${columnType(f, stored)}`).join(",\n");
}

/** Options of {@link clickhouseDdl}. */
export interface DdlOptions {
  database?: string;
  brokers?: string;
  topic?: string;
}

/** The whole DDL, statements separated by `;\n\n`. */
export function clickhouseDdl(o: DdlOptions = {}): string {
  const db = o.database ?? "xtcp";
  const raw = columns(false);
  const cols = columns(true);
  const select = `SELECT * REPLACE (fromUnixTimestamp64Nano(timestamp_ns, 'UTC') AS timestamp_ns)`;
  return [
    `-- xtcp2 ClickHouse schema, generated from the record's field table (deno task ddl). Do not edit.
-- The Kafka table reads one ProtobufList envelope per message with the row type XtcpFlatRecord
-- (format_schema 'xtcp_flat_record.proto:XtcpFlatRecord': put proto/xtcp_flat_record/v1/
-- xtcp_flat_record.proto in ClickHouse's format_schemas directory). Rows are routed by
-- schema_version into xtcp_flat_records_vN; xtcp_flat_records merges every epoch. The daemon's
-- http: destination inserts into xtcp_flat_records_http (raw rows, routed the same way):
-- /?query=INSERT INTO xtcp.xtcp_flat_records_http FORMAT ProtobufList
--   &format_schema=xtcp_flat_record.proto:XtcpFlatRecord
CREATE DATABASE IF NOT EXISTS ${db}`,
    `CREATE TABLE IF NOT EXISTS ${db}.xtcp_flat_records_kafka
(
${raw}
)
ENGINE = Kafka
SETTINGS
  kafka_broker_list = '${o.brokers ?? "redpanda-0:9092"}',
  kafka_topic_list = '${o.topic ?? "xtcp"}',
  kafka_group_name = 'xtcp_clickhouse',
  kafka_format = 'ProtobufList',
  kafka_schema = 'xtcp_flat_record.proto:XtcpFlatRecord',
  kafka_max_rows_per_message = 10000,
  kafka_max_block_size = 1024,
  kafka_flush_interval_ms = 2000,
  kafka_poll_max_batch_size = 16,
  kafka_handle_error_mode = 'stream'`,
    `CREATE TABLE IF NOT EXISTS ${db}.xtcp_flat_records_v0
(
${cols}
)
ENGINE = MergeTree
ORDER BY (timestamp_ns, hostname, record_counter, netlinker_id, socket_fd)
TTL toDateTime(timestamp_ns) + INTERVAL 1 MONTH`,
    `CREATE TABLE IF NOT EXISTS ${db}.xtcp_flat_records_v1 AS ${db}.xtcp_flat_records_v0`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.xtcp_flat_records_v0_mv TO ${db}.xtcp_flat_records_v0 AS
${select}
FROM ${db}.xtcp_flat_records_kafka WHERE schema_version = 0 AND length(_error) = 0`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.xtcp_flat_records_v1_mv TO ${db}.xtcp_flat_records_v1 AS
${select}
FROM ${db}.xtcp_flat_records_kafka WHERE schema_version = 1 AND length(_error) = 0`,
    `CREATE TABLE IF NOT EXISTS ${db}.xtcp_flat_records_errors
(
  topic String,
  partition UInt64,
  offset UInt64,
  raw String,
  error String,
  received DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY received
TTL received + INTERVAL 1 DAY`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.xtcp_flat_records_errors_mv TO ${db}.xtcp_flat_records_errors AS
SELECT _topic AS topic, _partition AS partition, _offset AS offset, _raw_message AS raw, _error AS error
FROM ${db}.xtcp_flat_records_kafka WHERE length(_error) > 0`,
    `CREATE TABLE IF NOT EXISTS ${db}.xtcp_flat_records_http
(
${raw}
)
ENGINE = Null`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.xtcp_flat_records_http_v0_mv TO ${db}.xtcp_flat_records_v0 AS
${select}
FROM ${db}.xtcp_flat_records_http WHERE schema_version = 0`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.xtcp_flat_records_http_v1_mv TO ${db}.xtcp_flat_records_v1 AS
${select}
FROM ${db}.xtcp_flat_records_http WHERE schema_version = 1`,
    `CREATE TABLE IF NOT EXISTS ${db}.xtcp_flat_records AS ${db}.xtcp_flat_records_v1
ENGINE = Merge('${db}', '^xtcp_flat_records_v[0-9]+$')`,
  ].join(";\n\n") + ";\n";
}

if (import.meta.main) console.log(clickhouseDdl().trimEnd());
