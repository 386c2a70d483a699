/**
 * The s3parquet destination against readers and a server that are not ours: every column of
 * every record written by our Parquet writer reads back equal in ClickHouse (chdb) and DuckDB;
 * our SigV4 client against Ceph's RGW (a real S3 that checks signatures); and the daemon
 * end to end: keys, sizes, rows, an RGW outage, SetS3Upload through gRPC, SIGTERM.
 */
import assert from "node:assert/strict";
import { askChdb } from "./support/chdb_answer.ts";
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
import { S3Client, S3Error, uploadErrorClass } from "../src/dest/s3.ts";
import { objectKey, S3ParquetDest, sanitizeHost } from "../src/dest/s3parquet.ts";
import { testDestOptions } from "./support/envelope.ts";
import {
  account,
  collected,
  daemon as startDaemonProcess,
  morePolls,
  type RunningDaemon,
  stopDaemon,
} from "./support/delivery.ts";
import { sample, scrape } from "./support/daemon.ts";
import { type Rgw, rgwMissing, startRgw } from "./support/rgw.ts";
import { freePort, until, xtcp2 } from "./support/run.ts";

const CTL = new URL("../src/cmd/xtcp2ctl.ts", import.meta.url).pathname;
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
interface ReadBack {
  count: number;
  rows: string[][];
  types: Record<string, string>;
  extra: string[][];
}

/** Runs one reader (tests/support/parquet_readers.ts) in its own process. */
async function readBack(ask: Record<string, unknown>): Promise<ReadBack> {
  const scratch = await Deno.makeTempDir();
  try {
    return await askChdb<ReadBack>(READERS, [JSON.stringify({ lib: LIB, scratch, ...ask })]);
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
        case "bool":
          r[f.json] = i % 2 === 1;
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
    if (typeof x === "boolean") return x ? "1" : "0"; // an INT32 column
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
        // Statistics as DuckDB reads them: unsigned order for UINT_64 (2^64 − 1 is the max).
        const stats = await readBack({
          reader: "duckdb",
          source: path,
          columns: [["record_counter", "uint64"]],
          order: "record_counter",
          stats: ["netns_inode", "timestamp_ns", "hostname"],
        });
        assert.ok(
          stats.extra.length >= 3 * 2,
          `several row groups: ${JSON.stringify(stats.extra)}`,
        );
        const col = (name: string, k: 1 | 2) =>
          stats.extra.filter((r) => r[0] === name).map((r) => BigInt(r[k] ?? "x"));
        const big = (xs: bigint[], max: boolean) =>
          xs.reduce((a, b) => (max ? (b > a ? b : a) : (b < a ? b : a)));
        const inodes = records.map((r) => r.netnsInode);
        assert.equal(big(col("netns_inode", 2), true), big(inodes, true));
        assert.equal(big(col("netns_inode", 1), false), big(inodes, false));
        const ts = records.map((r) => r.timestampNs);
        assert.equal(big(col("timestamp_ns", 1), false), big(ts, false));
        assert.ok(stats.extra.every((r) => r[3] === "0"), "null_count 0");
        const hosts = records.map((r) => r.hostname).sort();
        const hostStats = stats.extra.filter((r) => r[0] === "hostname");
        assert.equal(hostStats.map((r) => r[1] ?? "").sort()[0], hosts[0]);
        assert.equal(hostStats.map((r) => r[2] ?? "").sort().at(-1), hosts.at(-1));
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

Deno.test("uploadErrorClass names real failures: dns, tls, timeout, refused, canceled; keys", async () => {
  const garbage = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const c of garbage) {
      await c.write(new TextEncoder().encode("HTTP/1.1 400 Bad\r\n\r\n")).catch(() => {});
      c.close();
    }
  })().catch(() => {});
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l: Deno.Listener) => (l.addr as Deno.NetAddr).port;
  const at = (endpoint: string, timeoutMs = 2000) =>
    new S3Client({
      endpoint,
      bucket: "b",
      region: "us-east-1",
      accessKey: "a",
      secretKey: "s",
      timeoutMs,
    });
  const classOf = (c: S3Client) => c.headBucket().then(() => "ok", uploadErrorClass);
  try {
    assert.equal(await classOf(at("http://nonexistent.invalid:8080")), "dns");
    assert.equal(await classOf(at(`https://127.0.0.1:${port(garbage)}`)), "tls");
    assert.equal(await classOf(at(`http://127.0.0.1:${port(silent)}`, 300)), "timeout");
    assert.equal(await classOf(at(`http://127.0.0.1:${freePort()}`)), "refused");
    const aborted = AbortSignal.abort();
    const canceled = await fetch(`http://127.0.0.1:${port(silent)}/`, { signal: aborted }).then(
      () => "ok",
      uploadErrorClass,
    );
    assert.equal(canceled, "canceled");
  } finally {
    garbage.close();
    silent.close();
    await serving;
  }
  assert.equal(sanitizeHost("web 1/../x"), "web_1___x");
  assert.equal(sanitizeHost(""), "unknown");
  assert.equal(
    objectKey("/p/", "h", new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), 0xab),
    "p/host=h/date=2026-01-02/hour=03/1767323045_000000ab.parquet",
  );
});

/** `curl` with its own SigV4 signing (not ours): method, URL, and curl's output bytes. */
async function curl(
  rgw: Rgw,
  method: string,
  url: string,
  extra: string[] = [],
): Promise<Uint8Array> {
  const out = await new Deno.Command("curl", {
    args: [
      "-sS",
      "--fail-with-body",
      "-X",
      method,
      "--aws-sigv4",
      "aws:amz:us-east-1:s3",
      "--user",
      `${rgw.accessKey}:${rgw.secretKey}`,
      // curl 7.88 signs an empty payload hash RGW disagrees with; it signs this header as given.
      "-H",
      "x-amz-content-sha256: UNSIGNED-PAYLOAD",
      ...extra,
      // curl signs the path as written: '=' percent-encoded, as SigV4's canonical URI has it.
      url.replace(/(\/\/[^/]+\/[^?]*)/, (p) => p.replaceAll("=", "%3D")),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(
    out.success,
    `curl ${method} ${url}: ${new TextDecoder().decode(out.stderr)} ${
      new TextDecoder().decode(out.stdout)
    }`,
  );
  return out.stdout;
}

/** Keys and sizes under `bucket`, as curl lists them (ListObjectsV2; our keys need no paging). */
async function listKeys(rgw: Rgw, bucket: string): Promise<{ key: string; size: number }[]> {
  const xml = new TextDecoder().decode(
    await curl(rgw, "GET", `${rgw.endpoint}/${bucket}?list-type=2&max-keys=1000`),
  );
  return [...xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map((m) => ({
    key: /<Key>([^<]*)<\/Key>/.exec(m[1] ?? "")?.[1] ?? "",
    size: Number(/<Size>([^<]*)<\/Size>/.exec(m[1] ?? "")?.[1]),
  }));
}

/** Downloads every object of `bucket` under `dir`, keeping the key's path (hive layout). */
async function download(rgw: Rgw, bucket: string, dir: string): Promise<void> {
  for (const { key } of await listKeys(rgw, bucket)) {
    const path = `${dir}/${key}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeFile(path, await curl(rgw, "GET", `${rgw.endpoint}/${bucket}/${key}`));
  }
}

/** The flags of an s3parquet daemon writing to `bucket`. */
function s3Flags(rgw: Rgw, bucket: string, extra: string[] = []): string[] {
  return [
    "-s3Bucket",
    bucket,
    "-s3AccessKey",
    rgw.accessKey,
    "-s3SecretKey",
    rgw.secretKey,
    "-s3Prefix",
    "xtcp",
    "-s3FlushJitterPct",
    "0",
    ...extra,
  ];
}

const KEY =
  /^xtcp\/host=([A-Za-z0-9._-]+)\/date=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/(\d{10})_[0-9a-f]{8}\.parquet$/;

Deno.test({
  name:
    "s3parquet against Ceph RGW: client, daemon end to end, startup errors, outage, SetS3Upload, SIGTERM",
  ignore: !!NO_RGW || !HAVE_CHDB,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using rgw = await startRgw();
    /** ClickHouse's s3() over every object of `bucket`: the `columns` of each row. */
    const fromS3 = (bucket: string, columns: [string, string][] = [["record_counter", "uint64"]]) =>
      readBack({
        reader: "chdb-s3",
        source: `${rgw.endpoint}/${bucket}/xtcp/**.parquet`,
        accessKey: rgw.accessKey,
        secretKey: rgw.secretKey,
        columns,
        order: "record_counter",
      });
    // Every daemon a step starts, killed at the end should a step fail before stopping it.
    const started: RunningDaemon[] = [];
    const daemon = (...args: Parameters<typeof startDaemonProcess>) => {
      const d = startDaemonProcess(...args);
      started.push(d);
      return d;
    };
    try {
      const client = (bucket: string, secretKey = rgw.secretKey) =>
        new S3Client({
          endpoint: rgw.endpoint,
          bucket,
          region: "us-east-1",
          accessKey: rgw.accessKey,
          secretKey,
        });

      await t.step(
        "SigV4 client: PUT, a 3-part multipart upload, HEAD bucket; byte-equal through curl; a wrong secret is SignatureDoesNotMatch",
        async () => {
          await curl(rgw, "PUT", `${rgw.endpoint}/client`);
          const c = client("client");
          await c.headBucket();
          const small = crypto.getRandomValues(new Uint8Array(1000));
          await c.putObject("a/b=c/small.bin", small);
          const big = new Uint8Array(11 << 20);
          for (let i = 0; i < big.length; i += 65536) {
            crypto.getRandomValues(big.subarray(i, i + 65536));
          }
          assert.equal(await c.putMultipart("a/big.bin", big, 5 << 20), 3);
          assert.deepEqual(await curl(rgw, "GET", `${rgw.endpoint}/client/a/b=c/small.bin`), small);
          const back = await curl(rgw, "GET", `${rgw.endpoint}/client/a/big.bin`);
          assert.equal(back.length, big.length);
          assert.ok(back.every((b, i) => b === big[i]), "multipart object differs");
          const keys = (await listKeys(rgw, "client")).map((k) => `${k.key}:${k.size}`).sort();
          assert.deepEqual(keys, [`a/b=c/small.bin:1000`, `a/big.bin:${big.length}`]);
          await assert.rejects(
            client("client", "wrong" + rgw.secretKey).headBucket(),
            (err: unknown) => {
              assert.ok(err instanceof S3Error);
              assert.equal(err.code, "SignatureDoesNotMatch");
              assert.match(err.message, /HTTP 403 SignatureDoesNotMatch/);
              return true;
            },
          );
          await assert.rejects(client("nope").headBucket(), /HTTP 404 NoSuchBucket/);
        },
      );

      await t.step(
        "the destination alone: an object above the part size goes up as a multipart upload, every row in it",
        async () => {
          await curl(rgw, "PUT", `${rgw.endpoint}/multipart`);
          const opts = testDestOptions("protobufList");
          opts.s3 = {
            endpoint: rgw.endpoint,
            bucket: "multipart",
            prefix: "xtcp",
            region: "us-east-1",
            accessKey: rgw.accessKey,
            secretKey: rgw.secretKey,
            skipBucketProbe: false,
            hostname: "mp",
            flushBytes: 64 << 20,
            thresholdJitterPct: 0,
            flushIntervalMs: 3_600_000,
            flushJitterPct: 0,
            uploadMaxAttempts: 3,
            uploadBackoffCapMs: 100,
            codec: "none",
            queue: {
              maxBytes: 64 << 20,
              full: "drop_oldest",
              retryInitialMs: 100,
              retryMaxMs: 500,
              spoolDir: "",
              spoolMaxBytes: 0,
              shutdownDrainMs: 20_000,
            },
            partBytes: 5 << 20,
          };
          const records = oracleRecords(2000);
          {
            await using dest = await S3ParquetDest.open("", opts);
            // Uncompressed: ~800 bytes a row, 8,000 rows are a 6+ MiB object: two parts.
            for (let i = 0; i < 4; i++) dest.sendSync(framed(records));
          } // disposed: the last object finished and uploaded
          const objects = await listKeys(rgw, "multipart");
          assert.equal(objects.length, 1);
          assert.ok((objects[0]?.size ?? 0) > 5 << 20, JSON.stringify(objects));
          assert.equal(opts.counters.get("destS3Parquet", "upload"), 1);
          const s3 = await fromS3("multipart", COLUMNS);
          assert.equal(s3.count, 8000);
          const want = records.map(expected).sort(cmpCounter);
          for (let i = 0; i < s3.rows.length; i += 4) {
            assert.deepEqual(s3.rows[i], want[i / 4], `row ${i}`);
          }
        },
      );

      await t.step(
        "startup: a missing bucket is fatal (never created), a wrong secret names SignatureDoesNotMatch",
        async () => {
          const missing = await xtcp2([
            "-maxLoops",
            "1",
            "-dest",
            `s3parquet:${rgw.endpoint}`,
            ...s3Flags(rgw, "missing"),
          ]);
          assert.notEqual(missing.code, 0);
          assert.match(
            missing.stderr,
            /bucket "missing" does not exist .*never created.*NoSuchBucket/,
          );
          assert.deepEqual(await listKeys(rgw, "client").then((k) => k.length), 2);
          await assert.rejects(client("missing").headBucket(), /NoSuchBucket/);
          await curl(rgw, "PUT", `${rgw.endpoint}/wrongkey`);
          const wrong = await xtcp2([
            "-maxLoops",
            "1",
            "-dest",
            "s3parquet:",
            "-s3Endpoint",
            rgw.endpoint,
            ...s3Flags(rgw, "wrongkey"),
            "-s3SecretKey",
            "not-the-secret",
          ]);
          assert.notEqual(wrong.code, 0);
          assert.match(wrong.stderr, /bucket probe failed \(SignatureDoesNotMatch\)/);
          assert.doesNotMatch(wrong.stderr, /not-the-secret/);
          // -s3SkipBucketProbe starts without asking; S3 then refuses each object (404 NoSuchBucket):
          // dropped after a few tries, counted, never retried forever.
          const skipped = daemon(`s3parquet:${rgw.endpoint}`, "protobufList", [
            ...s3Flags(rgw, "missing", ["-s3ParquetFlushBytes", "1", "-s3SkipBucketProbe"]),
          ]);
          await morePolls(skipped, 3);
          const log = await stopDaemon(skipped);
          assert.match(log, /upload of xtcp\/host=.* failed .*HTTP 404 NoSuchBucket/);
          const a = account(log, "s3parquet");
          assert.equal(a.acknowledged, 0, log);
          assert.equal(a.dropped, a.handedOver, log);
          assert.ok((a.reasons["rejected"] ?? 0) > 0, log);
          await assert.rejects(client("missing").headBucket(), /NoSuchBucket/);
        },
      );

      await t.step(
        "daemon: keys, sizes, every row in ClickHouse s3()/file() and DuckDB (hive)",
        async () => {
          await curl(rgw, "PUT", `${rgw.endpoint}/e2e`);
          // An IPv6 socket whose row we look for.
          using l6 = Deno.listen({ hostname: "::1", port: 0 });
          const port6 = (l6.addr as Deno.NetAddr).port;
          const d = daemon(`s3parquet:${rgw.endpoint}`, "protobufList", [
            ...s3Flags(rgw, "e2e", ["-s3ParquetFlushBytes", "150000", "-s3FlushInterval", "1h"]),
            "-hostname",
            "test host/../x",
            "-label",
            "s3-e2e",
          ]);
          await morePolls(d, 6);
          const log = await stopDaemon(d);
          const rows = collected(log);
          const objects = await listKeys(rgw, "e2e");
          assert.ok(objects.length >= 2, `objects: ${JSON.stringify(objects)}\n${log}`);
          const now = new Date().toISOString();
          for (const o of objects) {
            const m = KEY.exec(o.key);
            assert.ok(m, o.key);
            assert.equal(m[1], "test_host___x");
            assert.equal(m[2], now.slice(0, 10));
            assert.ok(Math.abs(Number(m[4]) - Date.now() / 1000) < 120, o.key);
            assert.ok(o.size > 1000, `${o.key}: ${o.size} bytes`);
          }
          const s3 = await fromS3("e2e", [
            ["hostname", "string"],
            ["label", "string"],
            ["inet_diag_msg_family", "uint32"],
            ["inet_diag_msg_socket_source", "bytes"],
            ["event_date", "string"],
          ]);
          assert.equal(s3.count, rows, log);
          assert.ok(
            s3.rows.every((r) =>
              r[0] === "test host/../x" && r[1] === "s3-e2e" && r[4] === now.slice(0, 10)
            ),
          );
          // ClickHouse saw every object, each of the size S3 lists.
          assert.deepEqual(
            s3.extra.map(([path, size]) => `${path}:${size}`).sort(),
            objects.map((o) => `e2e/${o.key}:${o.size}`).sort(),
          );
          const dir = await Deno.makeTempDir();
          try {
            await download(rgw, "e2e", dir);
            const v6 = [
              ["inet_diag_msg_family", "uint32"],
              ["inet_diag_msg_socket_source", "bytes"],
              [
                "inet_diag_msg_socket_source_port",
                "uint32",
              ],
            ];
            const file = await readBack({
              reader: "chdb-file",
              source: `${dir}/xtcp/**/*.parquet`,
              columns: v6,
              order:
                `inet_diag_msg_socket_source_port, timestamp_ns, inet_diag_msg_family, inet_diag_msg_socket_cookie`,
            });
            assert.equal(file.count, rows);
            const duck = await readBack({
              reader: "duckdb",
              source: `${dir}/xtcp/*/*/*/*.parquet`,
              columns: v6,
              order:
                `inet_diag_msg_socket_source_port, timestamp_ns, inet_diag_msg_family, inet_diag_msg_socket_cookie`,
              hive: true,
            });
            assert.equal(duck.count, rows);
            assert.deepEqual(duck.rows, file.rows);
            const listener = duck.rows.filter((r) => r[2] === String(port6) && r[0] === "10");
            assert.ok(listener.length >= 6, `the [::1]:${port6} listener in every poll`);
            assert.ok(listener.every((r) => r[1] === "00000000000000000000000000000001"));
            const hours = new Set(objects.map((o) => KEY.exec(o.key)?.[3]));
            assert.deepEqual(
              duck.extra.map((r) => r.join(" ")),
              [...hours].sort().map((h) => `test_host___x ${now.slice(0, 10)} ${Number(h)}`),
            );
          } finally {
            await Deno.remove(dir, { recursive: true });
          }
        },
      );

      await t.step(
        "SIGTERM finishes the object being built and uploads it before the exit",
        async () => {
          await curl(rgw, "PUT", `${rgw.endpoint}/sigterm`);
          const d = daemon(
            `s3parquet:${rgw.endpoint}`,
            "protobufList",
            s3Flags(rgw, "sigterm", [
              "-s3ParquetFlushBytes",
              "2000000000",
              "-s3FlushInterval",
              "1h",
            ]),
          );
          await morePolls(d, 3);
          assert.equal(
            (await listKeys(rgw, "sigterm")).length,
            0,
            "nothing finished before SIGTERM",
          );
          const log = await stopDaemon(d);
          const objects = await listKeys(rgw, "sigterm");
          assert.equal(objects.length, 1, log);
          const last = /s3parquet: last object (\S+): (\d+) rows/.exec(log);
          assert.ok(last, log);
          assert.equal(objects[0]?.key, last[1]);
          assert.equal(Number(last[2]), collected(log));
          const s3 = await fromS3("sigterm");
          assert.equal(s3.count, collected(log));
        },
      );

      await t.step(
        "-pipeline: the worker's envelopes become the same objects, every row collected in S3",
        async () => {
          await curl(rgw, "PUT", `${rgw.endpoint}/pipeline`);
          const d = daemon(
            `s3parquet:${rgw.endpoint}`,
            "protobufList",
            s3Flags(rgw, "pipeline", ["-pipeline", "-s3FlushInterval", "2s"]),
          );
          await morePolls(d, 4);
          const log = await stopDaemon(d);
          assert.doesNotMatch(log, /pipeline worker|Decoding in the main thread/i, log);
          const objects = await listKeys(rgw, "pipeline");
          assert.ok(objects.length >= 2, `objects at the staleness timer and at SIGTERM:\n${log}`);
          assert.ok(objects.every((o) => KEY.test(o.key)), JSON.stringify(objects));
          const s3 = await fromS3("pipeline");
          assert.equal(s3.count, collected(log), log);
        },
      );

      await t.step("RGW stopped mid-run and restarted: no row lost", async () => {
        await curl(rgw, "PUT", `${rgw.endpoint}/outage`);
        const httpPort = freePort();
        const d = daemon(
          `s3parquet:${rgw.endpoint}`,
          "protobufList",
          s3Flags(rgw, "outage", [
            "-s3ParquetFlushBytes",
            "100000",
            "-s3FlushInterval",
            "1h",
            "-s3UploadMaxAttempts",
            "2",
            "-s3UploadBackoffCap",
            "200ms",
            "-promListen",
            `127.0.0.1:${httpPort}`,
          ]),
        );
        await morePolls(d, 3);
        const before = (await listKeys(rgw, "outage")).length;
        await rgw.stopGateway();
        try {
          await morePolls(d, 5);
          assert.match(
            d.log(),
            /upload of xtcp\/host=.* failed \(attempt 1 of 2\): .*(refused|Connection)/i,
          );
          // Counted by class: nothing listened on the gateway's port.
          const metrics = (await scrape(httpPort)).text;
          const counted = (v: string) =>
            sample(
              metrics,
              "xtcp_counts",
              `function="destS3Parquet",variable="${v}",type="${
                v === "uploadErrorClass" ? "refused" : "error"
              }"`,
            );
          assert.ok(counted("uploadErrorClass") >= 1, metrics);
          // The objects waiting (the one being retried at least) are the delivery's backlog.
          assert.ok(sample(metrics, "xtcp_dest_queue_rows", `dest="s3parquet"`) > 0, metrics);
          assert.ok(counted("uploadRetry") >= counted("uploadErrorClass"));
        } finally {
          await rgw.startGateway();
        }
        await morePolls(d, 4);
        const log = await stopDaemon(d);
        const a = account(log, "s3parquet");
        assert.equal(a.dropped, 0, log);
        assert.equal(a.acknowledged, a.handedOver, log);
        const s3 = await fromS3("outage");
        assert.equal(s3.count, collected(log), log);
        assert.ok(s3.extra.length > before);
      });

      await t.step(
        "SetS3Upload through gRPC (xtcp2ctl): the interval at once, the threshold from the next object",
        async () => {
          await curl(rgw, "PUT", `${rgw.endpoint}/setupload`);
          const grpcPort = freePort();
          const d = daemon(`s3parquet:${rgw.endpoint}`, "protobufList", [
            ...s3Flags(rgw, "setupload", [
              "-s3ParquetFlushBytes",
              "2000000000",
              "-s3FlushInterval",
              "1h",
            ]),
            "-grpcPort",
            String(grpcPort),
          ]);
          // xtcp2ctl, as an operator runs it: the gRPC client in a process of its own.
          const ctl = async (...args: string[]) => {
            const out = await new Deno.Command(Deno.execPath(), {
              args: [
                "run",
                "--quiet",
                "--allow-net",
                "--allow-read",
                CTL,
                ...args,
                "--port",
                String(grpcPort),
                "--target",
                "127.0.0.1",
              ],
              stdout: "piped",
              stderr: "piped",
            }).output();
            assert.ok(out.success, new TextDecoder().decode(out.stderr));
            return JSON.parse(new TextDecoder().decode(out.stdout));
          };
          try {
            await morePolls(d, 2);
            // A small threshold, the interval back at 1 h: the object being built keeps its cap.
            const set = await ctl(
              "set-s3-upload",
              "--threshold-bytes",
              "1",
              "--flush-interval",
              "1h",
            );
            assert.equal(set.s3ParquetFlushThresholdBytes, 1);
            await morePolls(d, 3);
            assert.equal(
              (await listKeys(rgw, "setupload")).length,
              0,
              "the object being built keeps its threshold",
            );
            // 1 s: the timer re-arms now, the object is finished within a second or so.
            const t0 = Date.now();
            await ctl("set-s3-upload", "--flush-interval", "1s");
            await until(
              "the object of the shorter interval",
              async () => (await listKeys(rgw, "setupload")).length >= 1,
              5000,
            );
            assert.ok(Date.now() - t0 < 4000);
            // Each later object is finished at its first flush: the new threshold.
            const after = (await listKeys(rgw, "setupload")).length;
            await morePolls(d, 3);
            assert.ok((await listKeys(rgw, "setupload")).length >= after + 3);
            assert.equal((await ctl("get")).s3FlushInterval, "1s");
          } finally {
            await stopDaemon(d);
          }
        },
      );
    } finally {
      for (const d of started) {
        try {
          Deno.kill(await d.pid(), "SIGKILL");
        } catch { /* stopped already */ }
        await d.child.status;
      }
    }
  },
});
