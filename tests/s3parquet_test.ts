/**
 * The s3parquet destination against readers and a server that are not ours: every column of
 * every record written by our Parquet writer reads back equal in ClickHouse (chdb) and DuckDB;
 * our SigV4 client against Ceph's RGW (a real S3 that checks signatures); and the daemon
 * end to end: keys, sizes, rows, an RGW outage, SetS3Upload through gRPC, SIGTERM.
 */
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  type XtcpFlatRecord,
  XtcpFlatRecordSchema,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { loadCodec } from "../src/format/parquet.ts";
import { PARQUET_CODECS } from "../src/format/parquet_codec.ts";
import { ParquetObject, RECORD_COLUMNS } from "../src/format/parquet_records.ts";
import { FIELDS } from "../src/record/fields.ts";
import { encodeVarint } from "../src/util/varint.ts";
import { rgwMissing } from "./support/rgw.ts";

const READERS = new URL("./support/parquet_readers.ts", import.meta.url).pathname;
const LIB = Deno.env.get("XTCP2_CHDB_LIB") ??
  new URL("../.deps/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so", import.meta.url)
    .pathname;
const HAVE_CHDB = (() => {
  try {
    Deno.statSync(LIB);
    return true;
  } catch {
    console.warn(
      `\n!!! SKIPPING s3parquet reader tests: ${LIB} is absent (./quickstart.sh test installs it)\n`,
    );
    return false;
  }
})();
const NO_RGW = rgwMissing();
if (NO_RGW) console.warn(`\n!!! SKIPPING s3parquet RGW tests: ${NO_RGW}\n`);

/** What a reader gave back. */
export interface ReadBack {
  count: number;
  rows: string[][];
  types: Record<string, string>;
  extra: string[][];
}

/** Runs one reader (tests/support/parquet_readers.ts) in its own process. */
export async function readBack(ask: Record<string, unknown>): Promise<ReadBack> {
  const scratch = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "-A", READERS, JSON.stringify({ lib: LIB, scratch, ...ask })],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `reader ${ask.reader} failed: ${err}`);
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}

const BASE_TS = 1_732_000_000_123_456_789n;
const DAY_NS = 86_400_000_000_000n;

/**
 * Records with a value in every field: extremes (2^64 − 1, 2^63 + 12345, 0xffffffff), an IPv6
 * and an IPv4 address, empty strings and absent fields, timestamps over several UTC days (one a
 * nanosecond before midnight).
 */
function oracleRecords(n: number): XtcpFlatRecord[] {
  const out: XtcpFlatRecord[] = [];
  for (let i = 0; i < n; i++) {
    const r: Record<string, unknown> = {};
    for (const f of FIELDS) {
      const k = f.number;
      switch (f.type) {
        case "uint32":
          r[f.json] = i === 0 ? 0xffffffff : i % 5 === 0 ? 0 : ((i + 1) * 2654435761 + k) >>> 0;
          break;
        case "uint64":
          r[f.json] = i === 0
            ? 2n ** 64n - 1n
            : i === 1
            ? 2n ** 63n + 12345n
            : BigInt(i) * 1_000_000_007n + BigInt(k);
          break;
        case "int64":
          r[f.json] = i === 2
            ? (BASE_TS / DAY_NS + 1n) * DAY_NS - 1n
            : BASE_TS + BigInt(i) * 7n * 3_600_000_000_000n;
          break;
        case "enum":
          r[f.json] = i % 8;
          break;
        case "string":
          r[f.json] = i % 7 === 3 ? "" : `${f.name.slice(0, 6)}-${i}`;
          break;
        case "bytes":
          r[f.json] = i % 2 === 0
            ? new Uint8Array([
              0x20,
              0x01,
              0x0d,
              0xb8,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              i >> 8,
              i & 255,
            ])
            : new Uint8Array([10, 0, i >> 8, i & 255, ...new Uint8Array(12)]);
          break;
      }
    }
    out.push(create(XtcpFlatRecordSchema, r));
  }
  return out;
}

/** protobufList framing of an Envelope of `rows`. */
function framed(rows: XtcpFlatRecord[]): Uint8Array {
  const env = toBinary(EnvelopeSchema, create(EnvelopeSchema, { row: rows }));
  const prefix = encodeVarint(env.length);
  const out = new Uint8Array(prefix.length + env.length);
  out.set(prefix);
  out.set(env, prefix.length);
  return out;
}

const hex = (b: Uint8Array) =>
  [...b].map((x) => x.toString(16).padStart(2, "0")).join("").toUpperCase();

/** The text each reader should give for every column of `r`. */
function expected(r: XtcpFlatRecord): string[] {
  const v = r as unknown as Record<string, unknown>;
  const cells = FIELDS.map((f) => {
    const x = v[f.json];
    if (x instanceof Uint8Array) return hex(x);
    return String(x ?? 0);
  });
  const ts = r.timestampNs;
  const days = ts >= 0n ? ts / DAY_NS : (ts + 1n) / DAY_NS - 1n;
  cells.push(new Date(Number(days) * 86_400_000).toISOString().slice(0, 10));
  return cells;
}

const COUNTER = FIELDS.findIndex((f) => f.name === "record_counter");
const cmpCounter = (a: string[], b: string[]) => {
  const d = BigInt(a[COUNTER] ?? 0) - BigInt(b[COUNTER] ?? 0);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
};

const COLUMNS: [string, string][] = RECORD_COLUMNS.map((c) => [c.name, c.kind]);

Deno.test({
  name:
    "parquet: every column of every record reads back equal in ClickHouse and DuckDB (each codec)",
  ignore: !HAVE_CHDB,
  async fn() {
    const records = oracleRecords(300);
    const want = records.map(expected).sort((a, b) => cmpCounter(a, b));
    const dir = await Deno.makeTempDir();
    try {
      for (const codec of PARQUET_CODECS) {
        await loadCodec(codec);
        // Two flushes, and row groups small enough that the object has several.
        const o = new ParquetObject(codec, 64 * 1024);
        o.append(framed(records.slice(0, 120)));
        o.append(framed(records.slice(120)));
        const file = o.finish();
        await Deno.writeFile(`${dir}/${codec}.parquet`, file);
        const path = `${dir}/${codec}.parquet`;
        for (const reader of ["chdb-file", "duckdb"]) {
          const got = await readBack({
            reader,
            source: path,
            columns: COLUMNS,
            order: "record_counter",
          });
          assert.equal(got.count, records.length, `${reader} ${codec}`);
          assert.equal(got.rows.length, records.length);
          got.rows.sort((a, b) => cmpCounter(a, b));
          for (let i = 0; i < want.length; i++) {
            assert.deepEqual(got.rows[i], want[i], `${reader} ${codec} row ${i}`);
          }
          const u64 = reader === "duckdb" ? "UBIGINT" : "UInt64";
          assert.equal(got.types["netns_inode"], u64, `${reader}: ${JSON.stringify(got.types)}`);
          assert.equal(got.types["tcp_info_rtt"], reader === "duckdb" ? "UINTEGER" : "UInt32");
          assert.equal(
            got.types["congestion_algorithm_enum"],
            reader === "duckdb" ? "INTEGER" : "Int32",
          );
          assert.equal(got.types["timestamp_ns"], reader === "duckdb" ? "BIGINT" : "Int64");
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
