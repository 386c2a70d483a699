/**
 * The http(s): and tcp: destinations against real servers on loopback, started here on free
 * ports: Deno.serve (plain, and TLS with a CA made here by openssl) records every POST; a TCP
 * receiver cuts the stream back into frames or lines, closes connections between flushes and
 * stops listening for a while. What the receivers got is checked against the daemon's own
 * account: rows received = rows its poll log says it collected - rows its closing account says it
 * dropped. The POST bodies go through ClickHouse's engine (chdb) as its HTTP interface would run
 * them (`INSERT INTO … FORMAT ProtobufList`, the project's schema): the same rows land.
 */
import assert from "node:assert/strict";
import { askChdb } from "./support/chdb_answer.ts";
import { fromBinary } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  type XtcpFlatRecord,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { parseDest } from "../src/dest/registry.ts";
import { refusedStatus } from "../src/dest/http.ts";
import { readVarint } from "../src/util/varint.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { freePort, until, xtcp2 } from "./support/run.ts";
import { unframe } from "./support/records.ts";
import {
  account,
  collected,
  daemon,
  morePolls,
  onlyNamespaces,
  polls,
  type RunningDaemon,
  stopDaemon,
} from "./support/delivery.ts";

const PROTO =
  new URL("../proto/xtcp_flat_record/v1/xtcp_flat_record.proto", import.meta.url).pathname;
const CH_CHECK = new URL("./support/clickhouse_http_check.ts", import.meta.url).pathname;
const CHDB_LIB = Deno.env.get("XTCP2_CHDB_LIB") ??
  new URL("../.deps/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so", import.meta.url)
    .pathname;
const OPENSSL = "/usr/bin/openssl";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The rows of one protobufList message (its length prefix checked). */
function envelopeRows(msg: Uint8Array): XtcpFlatRecord[] {
  return fromBinary(EnvelopeSchema, unframe(msg)).row;
}

/** A row's identity within a run: its namespace, socket and poll. */
function rowKey(r: XtcpFlatRecord): string {
  return `${r.netnsInode}/${r.inetDiagMsgSocketCookie}/${r.timestampNs}`;
}

/** Flushes the daemon's poll log says it made. */
function flushes(log: string): number {
  return [...log.matchAll(/^xtcp2: poll \d+: .* in (\d+) flushes/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
}

/** Daemon flags that keep its listeners off the ports of other tests. */
const quiet = () => ["-grpcPort", String(freePort()), "-promListen", `127.0.0.1:${freePort()}`];

/** One request the HTTP server received, and its answer. */
interface Post {
  url: string;
  method: string;
  contentType: string;
  body: Uint8Array;
  status: number;
  /** Answered after a delay (longer than the daemon waits, in the tests that set one). */
  late: boolean;
}

/** A real HTTP(S) server on a free loopback port that records every request. */
class HttpRecorder implements AsyncDisposable {
  readonly posts: Post[] = [];
  /** The status of the n-th request (0-based); 200 unless changed. */
  answer: (n: number) => number = () => 200;
  /** How long the n-th request waits for its answer (ms); none unless changed. */
  delay: (n: number) => number = () => 0;
  /** The body of a non-2xx answer. */
  errorBody = "Code: 1000. DB::Exception: test server says no";
  private readonly server: Deno.HttpServer<Deno.NetAddr>;

  constructor(tls?: { cert: string; key: string }) {
    this.server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen() {},
      onError: () => new Response("handler failed", { status: 599 }),
      ...(tls ?? {}),
    }, async (req) => {
      const body = new Uint8Array(await req.arrayBuffer());
      const n = this.posts.length;
      const status = this.answer(n);
      const late = this.delay(n);
      this.posts.push({
        url: req.url,
        method: req.method,
        contentType: req.headers.get("content-type") ?? "",
        body,
        status,
        late: late > 0,
      });
      if (late) await sleep(late);
      return new Response(status < 300 ? "" : this.errorBody, { status });
    });
  }

  get port(): number {
    return this.server.addr.port;
  }

  /** The posts answered 2xx in time. */
  get accepted(): Post[] {
    return this.posts.filter((p) => p.status < 300 && !p.late);
  }

  /** Rows of the protobufList posts answered 2xx. */
  acceptedRows(): XtcpFlatRecord[] {
    return this.accepted.flatMap((p) => envelopeRows(p.body));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.shutdown();
  }
}

/** After `log`'s run: what `received()` counts is exactly collected - dropped. */
async function accounted(
  log: string,
  scheme: string,
  received: () => number,
): Promise<number> {
  const want = collected(log) - account(log, scheme).dropped;
  await until(`${want} rows received`, () => received() >= want, 20_000).catch((err) => {
    throw new Error(`${(err as Error).message} (${received()} so far)\n${log}`);
  });
  await sleep(300); // nothing more arrives
  assert.equal(received(), want, `rows received = collected - dropped\n${log}`);
  return want;
}

Deno.test("http(s) destinations are whole URLs; 4xx but 408 and 429 are refusals", () => {
  const url = "http://127.0.0.1:8123/?query=INSERT%20INTO%20t%20FORMAT%20ProtobufList&a=b";
  assert.deepEqual(parseDest(url), { scheme: "http", address: url });
  assert.deepEqual(parseDest("https://[::1]:8443/x"), {
    scheme: "https",
    address: "https://[::1]:8443/x",
  });
  assert.deepEqual(parseDest("tcp:127.0.0.1:9000"), { scheme: "tcp", address: "127.0.0.1:9000" });
  assert.throws(() => parseDest("http://"), /http: not a URL/);
  assert.throws(() => parseDest("http://127.0.0.1:99999/"), /http: not a URL/);
  assert.throws(() => parseDest("tcp:nowhere"), /tcp: needs HOST:PORT/);
  assert.deepEqual(
    [400, 401, 403, 404, 408, 413, 429, 499, 500, 502, 503].filter(refusedStatus),
    [400, 404, 413, 499],
  );
});

Deno.test({
  name: "http, tcp: nothing listening at startup stops the daemon with a message",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    for (
      const [dest, re] of [
        [`http://127.0.0.1:${port}/ingest`, /cannot start: http:\/\/127\.0\.0\.1:\d+: /],
        [
          `tcp:127.0.0.1:${port}`,
          /cannot start: tcp: Connect to 127\.0\.0\.1:\d+: Connection refused/,
        ],
      ] as const
    ) {
      const r = await xtcp2(["-maxLoops", "1", "-dest", dest, ...quiet()]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, re);
    }
  },
});

Deno.test({
  name:
    "http: one POST per flush to the URL as given, every row received; ClickHouse (chdb) running those requests stores exactly those rows",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 10 });
    await using rec = new HttpRecorder();
    const query = "INSERT INTO xtcp.xtcp_flat_records_http FORMAT ProtobufList";
    const url = `http://127.0.0.1:${rec.port}/?query=${encodeURIComponent(query)}&format_schema=${
      encodeURIComponent(`${PROTO}:XtcpFlatRecord`)
    }`;
    // Several flushes per poll.
    const d = daemon(url, "protobufList", ["-envelopeFlushRows", "150"], load.netns);
    await morePolls(d, 4, 0);
    const log = await stopDaemon(d);
    const acc = account(log, "http");
    assert.equal(acc.dropped, 0, log);
    assert.equal(acc.handedOver, collected(log), log);
    await accounted(log, "http", () => rec.acceptedRows().length);
    assert.equal(rec.posts.length, flushes(log), "one POST per flush");
    assert.ok(rec.posts.length > polls(log), "several flushes per poll");
    for (const p of rec.posts) {
      assert.equal(p.method, "POST");
      assert.equal(p.contentType, "application/octet-stream");
      const got = new URL(p.url);
      assert.equal(got.pathname, "/");
      assert.equal(got.searchParams.get("query"), query);
      assert.equal(got.searchParams.get("format_schema"), `${PROTO}:XtcpFlatRecord`);
    }
    const rows = rec.acceptedRows();
    assert.equal(new Set(rows.map(rowKey)).size, rows.length, "no row twice");
    if (!exists(CHDB_LIB)) {
      console.warn(`\n!!! SKIPPING the ClickHouse half: ${CHDB_LIB} is absent\n`);
      return;
    }
    const dir = Deno.makeTempDirSync({ prefix: "xtcp2-http-" });
    try {
      Deno.mkdirSync(`${dir}/posts`);
      rec.posts.forEach((p, i) => {
        Deno.writeTextFileSync(`${dir}/posts/${i}.url`, p.url);
        Deno.writeFileSync(`${dir}/posts/${i}.body`, p.body);
      });
      const ch = await askChdb<{
        requests: number;
        rows: string[];
        v1: number;
      }>(CH_CHECK, [CHDB_LIB, `${dir}/posts`, `${dir}/ch`]);
      assert.equal(ch.requests, rec.posts.length);
      assert.equal(ch.v1, rows.length, "every row routed to xtcp_flat_records_v1");
      const ours = rows.map((r) => `${rowKey(r)}/${r.tcpInfoRtt}/${r.inetDiagMsgSocketSourcePort}`)
        .sort();
      assert.deepEqual(ch.rows.sort(), ours, "ClickHouse stores exactly the rows received");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "http: the Content-Type of every marshaller is the original's (humanize: NDJSON)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Reference §6.3: jsonl, protoJson, csv, tsv, protoText by name, everything else octet-stream
    // (humanize, NDJSON like jsonl, says so here: the one deliberate difference).
    const want: Record<string, string> = {
      humanize: "application/x-ndjson",
      protobufList: "application/octet-stream",
      protoJson: "application/json",
      protoText: "text/plain; charset=utf-8",
      msgpack: "application/octet-stream",
      jsonl: "application/x-ndjson",
      csv: "text/csv",
      tsv: "text/tab-separated-values",
    };
    await using load = await startLoad({ conns: 20, bytes: 10 });
    await using rec = new HttpRecorder();
    for (const [marshal, type] of Object.entries(want)) {
      const from = rec.posts.length;
      const r = await xtcp2([
        "-maxLoops",
        "1",
        "-dest",
        `http://127.0.0.1:${rec.port}/${marshal}`,
        "-marshal",
        marshal,
        ...quiet(),
      ], { prefix: onlyNamespaces(load.netns) });
      assert.equal(r.code, 0, r.stderr);
      const posts = rec.posts.slice(from);
      assert.equal(posts.length, flushes(r.stderr), r.stderr);
      for (const p of posts) {
        assert.equal(new URL(p.url).pathname, `/${marshal}`);
        assert.equal(p.contentType, type, marshal);
      }
      if (marshal === "jsonl") {
        const lines = posts.map((p) => new TextDecoder().decode(p.body)).join("")
          .split("\n").filter((l) => l);
        assert.equal(lines.length, collected(r.stderr));
        for (const l of lines) assert.ok(JSON.parse(l).inet_diag_msg_socket_cookie);
      }
    }
  },
});

Deno.test({
  name: "http: a server answering 500 for 5 s and then 200 loses nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 10 });
    await using rec = new HttpRecorder();
    let failUntil = 0;
    rec.answer = () => (Date.now() < failUntil ? 500 : 200);
    const d = daemon(`http://127.0.0.1:${rec.port}/`, "protobufList", [], load.netns);
    await until("rows delivered", () => rec.accepted.length >= 2, 20_000);
    failUntil = Date.now() + 5000;
    await sleep(5000);
    await until("delivery again", () => /delivering again after/.test(d.log()), 20_000);
    await morePolls(d, 2);
    const log = await stopDaemon(d);
    const failed = rec.posts.filter((p) => p.status === 500);
    assert.ok(failed.length >= 3, `${failed.length} answers were 500`);
    assert.match(log, /http: send failed, retrying with backoff .*HTTP 500: Code: 1000\./);
    assert.equal(account(log, "http").dropped, 0, log);
    // Every body answered 500 came again and was taken.
    const taken = new Set(rec.accepted.map((p) => p.body.join()));
    for (const p of failed) assert.ok(taken.has(p.body.join()), "a refused body was resent");
    await accounted(log, "http", () => rec.acceptedRows().length);
    const rows = rec.acceptedRows();
    assert.equal(new Set(rows.map(rowKey)).size, rows.length, "no row twice");
  },
});

Deno.test({
  name: "http: an answer later than --produceTimeout is a failure; the flush is sent again",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 10 });
    await using rec = new HttpRecorder();
    rec.delay = (n) => (n === 1 || n === 2 ? 2500 : 0);
    const d = daemon(`http://127.0.0.1:${rec.port}/`, "protobufList", [
      "-produceTimeout",
      "1s",
    ], load.netns);
    await until("delivery after the late answers", () => rec.accepted.length >= 3, 30_000);
    await morePolls(d, 1);
    const log = await stopDaemon(d);
    assert.match(log, /http: send failed, retrying with backoff .*No answer within 1000 ms: POST/);
    assert.equal(account(log, "http").dropped, 0, log);
    const taken = new Set(rec.accepted.map((p) => p.body.join()));
    for (const p of rec.posts.filter((p) => p.late)) {
      assert.ok(taken.has(p.body.join()), "a body answered late was sent again");
    }
    // The server saw the late bodies twice (at-least-once); in time, each row once.
    await accounted(log, "http", () => rec.acceptedRows().length);
  },
});

Deno.test({
  name: "http: a 400 answer drops that envelope after 3 attempts, counted as rejected",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 10 });
    await using rec = new HttpRecorder();
    rec.answer = (n) => (n < 3 ? 400 : 200);
    rec.errorBody = "Code: 27. DB::Exception: Cannot parse input";
    const d = daemon(`http://127.0.0.1:${rec.port}/`, "protobufList", [], load.netns);
    await until("delivery after the refusals", () => rec.accepted.length >= 2, 20_000);
    await morePolls(d, 1);
    const log = await stopDaemon(d);
    const [first, ...again] = rec.posts.slice(0, 3);
    assert.ok(first);
    for (const p of again) {
      assert.deepEqual(p.body, first.body, "the same envelope, attempted 3 times");
    }
    assert.notDeepEqual(rec.posts[3]?.body, first.body, "then the next one");
    const refusedRows = envelopeRows(first.body).length;
    assert.match(
      log,
      new RegExp(
        `http: ${refusedRows} rows refused 3 times, dropped: POST http://127\\.0\\.0\\.1:\\d+/: HTTP 400: Code: 27\\.`,
      ),
    );
    const acc = account(log, "http");
    assert.deepEqual(acc.reasons, { rejected: refusedRows }, log);
    assert.equal(acc.dropped, refusedRows);
    await accounted(log, "http", () => rec.acceptedRows().length);
  },
});

/** A CA and a server certificate for 127.0.0.1 signed by it, made by openssl in `dir`. */
async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(OPENSSL, {
      args,
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    assert.ok(out.success, `openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=xtcp2 test CA",
  ]);
  await run(["req", ...ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"]);
  Deno.writeTextFileSync(`${dir}/san.ext`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await run([
    "x509",
    "-req",
    "-in",
    "srv.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "srv.pem",
    "-days",
    "2",
    "-extfile",
    "san.ext",
  ]);
  return {
    ca: `${dir}/ca.pem`,
    cert: Deno.readTextFileSync(`${dir}/srv.pem`),
    key: Deno.readTextFileSync(`${dir}/srv.key`),
  };
}

Deno.test({
  name:
    "https: a server whose CA is given with --httpCaFile gets every row; without it nothing is sent and nothing acknowledged",
  ignore: !exists(OPENSSL),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "xtcp2-tls-" });
    try {
      const certs = await makeCerts(dir);
      await using load = await startLoad({ conns: 200, bytes: 10 });
      await using rec = new HttpRecorder({ cert: certs.cert, key: certs.key });
      const url = `https://127.0.0.1:${rec.port}/ingest`;

      const trusted = daemon(url, "protobufList", ["-httpCaFile", certs.ca], load.netns);
      await morePolls(trusted, 3, 0);
      const log = await stopDaemon(trusted);
      assert.equal(account(log, "https").dropped, 0, log);
      await accounted(log, "https", () => rec.acceptedRows().length);
      assert.ok(rec.posts.every((p) => p.url.endsWith("/ingest")));

      const before = rec.posts.length;
      const untrusted = daemon(url, "protobufList", [], load.netns);
      await morePolls(untrusted, 3, 0);
      const noCa = await stopDaemon(untrusted);
      assert.match(noCa, /https: send failed, retrying with backoff .*certificate/i);
      const acc = account(noCa, "https");
      assert.equal(acc.acknowledged, 0, noCa);
      assert.equal(acc.dropped, collected(noCa), "every row accounted for as not delivered");
      assert.equal(rec.posts.length, before, "no request reached the server");

      const unreadable = await xtcp2([
        "-maxLoops",
        "1",
        "-dest",
        url,
        "-httpCaFile",
        `${dir}/absent.pem`,
        ...quiet(),
      ]);
      assert.equal(unreadable.code, 1);
      assert.match(unreadable.stderr, /cannot read --httpCaFile .*absent\.pem/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

/** What one TCP connection carried. */
interface ConnLog {
  rows: number;
  keys: Set<string>;
  duplicates: number;
  /** Bytes of an incomplete frame or line left when the connection ended. */
  partial: number;
}

/** When the receiver ends a connection: after `rows` rows, once idle; then away `downMs`. */
interface Cut {
  rows: number;
  downMs: number;
}

/**
 * A real TCP receiver on a fixed loopback port: cuts each connection's stream into uvarint
 * frames of protobufList messages, or into JSON lines; ends connections as `cuts` say (between
 * flushes: after 300 ms without data) and may stop listening for a while.
 */
class TcpReceiver {
  readonly conns: ConnLog[] = [];
  readonly port = freePort();
  private listener: Deno.TcpListener | undefined;
  private readonly open = new Set<Deno.TcpConn>();

  constructor(private readonly mode: "frames" | "lines", private readonly cuts: Cut[]) {}

  get rows(): number {
    return this.conns.reduce((n, c) => n + c.rows, 0);
  }

  start(): void {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.port });
    this.listener = listener;
    (async () => {
      for await (const c of listener) {
        this.open.add(c);
        const log: ConnLog = { rows: 0, keys: new Set(), duplicates: 0, partial: 0 };
        const cut = this.cuts[this.conns.length];
        this.conns.push(log);
        this.serve(c, log, cut).catch(() => {}).finally(() => this.open.delete(c));
      }
    })().catch(() => {});
  }

  private take(log: ConnLog, key: string): void {
    log.rows++;
    if (log.keys.has(key)) log.duplicates++;
    log.keys.add(key);
  }

  /** Takes what is complete in `buf`; returns the rest. */
  private consume(buf: Uint8Array, log: ConnLog): Uint8Array {
    if (this.mode === "lines") {
      const end = buf.lastIndexOf(0x0a);
      if (end < 0) return buf;
      for (const line of new TextDecoder().decode(buf.subarray(0, end)).split("\n")) {
        const o = JSON.parse(line);
        this.take(log, `${o.netns_inode}/${o.inet_diag_msg_socket_cookie}/${o.timestamp_ns}`);
      }
      return buf.slice(end + 1);
    }
    for (;;) {
      let len: number;
      let at: number;
      try {
        [len, at] = readVarint(buf, 0);
      } catch {
        return buf; // the length is not all here yet
      }
      if (buf.length < at + len) return buf;
      for (const r of envelopeRows(buf.subarray(at, at + len))) this.take(log, rowKey(r));
      buf = buf.slice(at + len);
    }
  }

  private async serve(c: Deno.TcpConn, log: ConnLog, cut: Cut | undefined): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(1 << 16);
    for (;;) {
      const read = c.read(chunk);
      let got: number | null | "idle";
      if (cut && log.rows >= cut.rows && buf.length === 0) {
        got = await Promise.race([read, sleep(300).then(() => "idle" as const)]);
      } else got = await read;
      if (got === "idle") {
        read.catch(() => {});
        c.close();
        if (cut?.downMs) {
          this.listener?.close();
          setTimeout(() => this.start(), cut.downMs);
        }
        return;
      }
      if (got === null) {
        log.partial = buf.length;
        return;
      }
      const next = new Uint8Array(buf.length + got);
      next.set(buf);
      next.set(chunk.subarray(0, got), buf.length);
      buf = this.consume(next, log);
    }
  }

  stop(): void {
    this.listener?.close();
    for (const c of this.open) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  }
}

/** Runs the daemon into `rx` until it is on its last planned connection, then stops it. */
async function tcpRun(
  rx: TcpReceiver,
  cuts: number,
  marshal: string,
  netns: string,
): Promise<string> {
  const d: RunningDaemon = daemon(`tcp:127.0.0.1:${rx.port}`, marshal, [], netns);
  try {
    await until(
      `connection ${cuts + 1}`,
      () => rx.conns.length > cuts && (rx.conns[cuts]?.rows ?? 0) > 0,
      40_000,
    );
    await morePolls(d, 2);
  } catch (err) {
    Deno.kill(await d.pid(), "SIGKILL");
    await d.child.status;
    await d.drained;
    throw new Error(`${(err as Error).message}\n${d.log()}`);
  }
  return await stopDaemon(d);
}

Deno.test({
  name:
    "tcp: framed protobufList; a receiver that closes between flushes, once going away 3 s, loses no row, none twice on a connection",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Flushes of a few kB: each goes out in one write, which the kernel takes even when the
    // receiver has closed (it answers with a reset only afterwards): the daemon must notice the
    // close before it writes.
    await using load = await startLoad({ conns: 20, bytes: 10 });
    // The first connection ends after 80 rows (two polls or so) and the port is closed for 3 s;
    // the second ends after 80 rows and the port stays open.
    const rx = new TcpReceiver("frames", [{ rows: 80, downMs: 3000 }, { rows: 80, downMs: 0 }]);
    rx.start();
    using _rx = { [Symbol.dispose]: () => rx.stop() };
    const log = await tcpRun(rx, 2, "protobufList", load.netns);
    assert.equal(account(log, "tcp").dropped, 0, log);
    await accounted(log, "tcp", () => rx.rows);
    assert.ok(rx.conns.length >= 3, `${rx.conns.length} connections`);
    for (const [i, c] of rx.conns.entries()) {
      assert.equal(c.duplicates, 0, `connection ${i}: no row twice`);
      assert.equal(c.partial, 0, `connection ${i}: no half frame`);
    }
    // The close was noticed before a write: the next send found the port closed.
    assert.match(
      log,
      /tcp: send failed, retrying with backoff .*: Connect to 127\.0\.0\.1:\d+: Connection refused/,
      `the port was closed:\n${log}`,
    );
    assert.match(log, /tcp: delivering again after/);
  },
});

Deno.test({
  name: "tcp: jsonl lines as they are; a receiver that closes between flushes loses no line",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 10 });
    const rx = new TcpReceiver("lines", [{ rows: 1000, downMs: 0 }]);
    rx.start();
    using _rx = { [Symbol.dispose]: () => rx.stop() };
    const log = await tcpRun(rx, 1, "jsonl", load.netns);
    assert.equal(account(log, "tcp").dropped, 0, log);
    await accounted(log, "tcp", () => rx.rows);
    for (const [i, c] of rx.conns.entries()) {
      assert.equal(c.duplicates, 0, `connection ${i}: no line twice`);
      assert.equal(c.partial, 0, `connection ${i}: no half line`);
    }
  },
});
