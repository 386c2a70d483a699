/**
 * Running it the way operators do, against the live kernel: `deno task start` writes humanised
 * JSON lines that agree with `ss`; xtcp2client's humanize/csv/tsv/null formats; gRPC health and
 * server reflection (v1, v1alpha) from python3-grpcio's C core with raw messages, NOT_SERVING once
 * SIGTERM begins; the original's Netlinker and Deserialize counters on /metrics from real counts,
 * promtool still remarking only the reference's two names.
 */
import assert from "node:assert/strict";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { daemon, onlyNamespaces, type RunningDaemon } from "./support/delivery.ts";
import { PROMTOOL, promtoolCheck, sample, scrape } from "./support/daemon.ts";
import { freePort, runTask, taskArgv, until } from "./support/run.ts";
import { parseSs, type SsSocket } from "./support/ss_text.ts";
import { SS_TO_KERNEL } from "./support/records.ts";

const dec = new TextDecoder();
const INTEROP = new URL("./support/grpc_interop.py", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3";

function missing(path: string, what: string): boolean {
  try {
    Deno.statSync(path);
    return false;
  } catch {
    console.error(`SKIP ${what}: ${path} missing`);
    return true;
  }
}

const NO_GRPCIO = (() => {
  if (missing(PYTHON, "python3-grpcio tests")) return true;
  const ok = new Deno.Command(PYTHON, { args: ["-c", "import grpc"] }).outputSync().success;
  if (!ok) {
    console.error("SKIP python3-grpcio tests: import grpc fails (apt install python3-grpcio)");
  }
  return !ok;
})();

/** `ss -tinmeaH` in the namespace, by socket cookie. */
async function ssIn(netns: string): Promise<Map<bigint, SsSocket>> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, "ss", "-tinmeaH"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, dec.decode(out.stderr));
  return new Map(parseSs(dec.decode(out.stdout)).map((s) => [s.cookie!, s]));
}

/** python3-grpcio against 127.0.0.1:port (`token`: sent as the bearer token where the API wants one). */
async function interop(
  port: number,
  args: string[],
  token = "",
): Promise<{ code: number; lines: string[] }> {
  const out = await new Deno.Command(PYTHON, {
    args: [INTEROP, `127.0.0.1:${port}`, ...args],
    env: token ? { XTCP_API_TOKEN: token } : {},
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = dec.decode(out.stdout).split("\n").filter((l) => l);
  assert.equal(dec.decode(out.stderr), "", `python stderr for ${args.join(" ")}`);
  return { code: out.code, lines };
}

/** A loopback TCP server that takes connections and never reads or answers; closed on dispose. */
function silentServer(): { port: number } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })().catch(() => {}); // ends with close()
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const c of held) c.close();
    },
  };
}

/** Waits until the daemon's /readyz answers 200. */
async function ready(d: RunningDaemon): Promise<void> {
  await until("the daemon ready", async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${d.httpPort}/readyz`);
      await r.body?.cancel();
      return r.status === 200;
    } catch {
      return false;
    }
  }, 20_000);
}

/** SIGTERM (if not sent yet, and it still runs), then its exit status and whole log. */
async function stop(d: RunningDaemon, signalled = false): Promise<{ code: number; log: string }> {
  const exited = await Promise.race([
    d.child.status.then(() => true),
    new Promise<false>((r) => setTimeout(() => r(false), 0)),
  ]);
  if (!signalled && !exited) Deno.kill(await d.pid(), "SIGTERM");
  const { code } = await d.child.status;
  await d.drained;
  return { code, log: d.log() };
}

Deno.test({
  name:
    "deno task start (the README's first command) writes humanised JSON lines that agree with ss: addresses, states, congestion control, RFC 3339 time",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 20, bytes: 100 });
    const dir = Deno.makeTempDirSync();
    try {
      const before = Date.now();
      const argv = [
        ...onlyNamespaces(load.netns),
        Deno.execPath(),
        "run",
        "--quiet",
        ...taskArgv("start"),
        "-maxLoops",
        "1",
        "-pollJitterPct",
        "0",
        "-grpcPort",
        String(freePort()),
        "-promListen",
        `127.0.0.1:${freePort()}`,
      ];
      assert.ok(argv.includes("humanize"), argv.join(" "));
      const out = await new Deno.Command(argv[0], {
        args: argv.slice(1),
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, dec.decode(out.stderr));
      const ss = await ssIn(load.netns);
      const rows = Deno.readTextFileSync(`${dir}/xtcp2-data/xtcp2.jsonl`).trimEnd().split("\n")
        .map((l) => JSON.parse(l));
      const mine = rows.filter((r) => r.netns === load.netns);
      assert.ok(mine.length >= 40, `${mine.length} rows of the load's namespace`);
      const families = new Set<number>();
      let matched = 0;
      for (const r of mine) {
        families.add(r.inet_diag_msg_family);
        assert.match(r.timestamp_ns, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
        const t = Date.parse(r.timestamp_ns);
        assert.ok(t >= before - 1000 && t <= Date.now(), r.timestamp_ns);
        const s = ss.get(BigInt(r.inet_diag_msg_socket_cookie));
        if (!s) continue; // a socket gone between the poll and ss
        matched++;
        const line = JSON.stringify(r);
        assert.equal(r.inet_diag_msg_socket_source, s.localAddr, line);
        assert.equal(r.inet_diag_msg_socket_source_port ?? 0, s.localPort, line);
        if (s.peerAddr !== "*") assert.equal(r.inet_diag_msg_socket_destination, s.peerAddr, line);
        assert.equal(r.inet_diag_msg_state, SS_TO_KERNEL[s.state], line);
        assert.equal(r.tcp_info_state, SS_TO_KERNEL[s.state], line);
        if (s.cc === "cubic") assert.equal(r.congestion_algorithm_enum, "CUBIC", line);
      }
      assert.ok(matched >= 40, `${matched} rows matched ss`);
      assert.deepEqual([...families].sort((a, b) => a - b), [2, 10], "IPv4 and IPv6");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "xtcp2client --format humanize|csv|tsv|null and --columns against a live daemon; bad columns are refused before connecting",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 20, bytes: 100 });
    const d = daemon("null", "protobufList", [], load.netns);
    try {
      await ready(d);
      const port = ["--port", String(d.grpcPort), "--target", "127.0.0.1"];
      const client = async (args: string[]) => {
        const out = await runTask("xtcp2client", [...port, ...args]);
        return { code: out.code, out: dec.decode(out.stdout), err: dec.decode(out.stderr) };
      };
      const human = await client(["--format", "humanize", "--count", "40"]);
      assert.equal(human.code, 0, human.err);
      const lines = human.out.trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.equal(lines.length, 40);
      const states = new Set(Object.values(SS_TO_KERNEL));
      for (const r of lines) {
        assert.match(
          r.inet_diag_msg_socket_source,
          /^(\d+\.\d+\.\d+\.\d+|[0-9a-f:.]*:[0-9a-f:.]*)$/,
        );
        assert.ok(states.has(r.inet_diag_msg_state), r.inet_diag_msg_state);
        assert.match(r.timestamp_ns, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/);
      }

      const cols = "netns,inet_diag_msg_socket_source,inetDiagMsgState,tcp_info_rtt";
      const csv = await client(["--format", "csv", "--columns", cols, "--count", "30"]);
      assert.equal(csv.code, 0, csv.err);
      const rows = csv.out.trimEnd().split("\n");
      assert.equal(rows[0], cols);
      assert.equal(rows.length, 31, "one header, then one row per record");
      for (const row of rows.slice(1)) {
        const [, src, state, rtt] = row.split(",");
        assert.match(src, /^(\d+\.\d+\.\d+\.\d+|[0-9a-f:.]*:[0-9a-f:.]*)$/, row);
        assert.ok(states.has(state), row);
        assert.match(rtt, /^\d+$/, row);
      }

      const tsv = await client(["--format", "tsv", "--count", "3"]);
      assert.equal(tsv.code, 0, tsv.err);
      const header = tsv.out.split("\n")[0].split("\t");
      assert.equal(header[0], "schemaVersion");
      assert.ok(header.length > 150, `${header.length} columns`);

      const none = await client(["--format", "null", "--count", "5"]);
      assert.equal(none.code, 0, none.err);
      assert.equal(none.out, "");

      const bad = await client(["--format", "csv", "--columns", "netns,colour"]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.err, /--columns: "colour": unknown column/);
      const notCsv = await client(["--format", "humanize", "--columns", "netns"]);
      assert.equal(notCsv.code, 2);
      assert.match(notCsv.err, /--columns goes with --format csv or tsv/);
      const badFormat = await client(["--format", "yaml"]);
      assert.equal(badFormat.code, 2);
      assert.match(badFormat.err, /use json, humanize, csv, tsv, table, null/);
    } finally {
      const { code, log } = await stop(d);
      assert.equal(code, 0, log);
    }
  },
});

const SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "xtcp_config.v1.ConfigService",
  "xtcp_flat_record.v1.XTCPFlatRecordService",
];

Deno.test({
  name:
    "gRPC reflection v1 and v1alpha and grpc.health.v1 from python3-grpcio (raw messages): services listed, descriptors load, SERVING, NOT_SERVING once SIGTERM begins (Check and Watch)",
  ignore: NO_GRPCIO,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The destination takes connections and never answers: at shutdown the delivery queue
    // drains for 3 s, with the gRPC server still up, which is when Check must say NOT_SERVING.
    await using silent = silentServer();
    const dest = `http://127.0.0.1:${silent.port}/`;
    const d = daemon(dest, "protobufList", ["-shutdownDrain", "3s"]);
    let signalled = false;
    try {
      await ready(d);
      const g = d.grpcPort;
      for (const v of ["v1", "v1alpha"]) {
        const list = await interop(g, ["reflect", v, "list"]);
        assert.equal(list.code, 0, list.lines.join("\n"));
        assert.deepEqual(list.lines, SERVICES, v);
        const sym = await interop(g, [
          "reflect",
          v,
          "symbol",
          "xtcp_flat_record.v1.XTCPFlatRecordService",
        ]);
        assert.equal(sym.code, 0, sym.lines.join("\n"));
        assert.deepEqual(sym.lines.filter((l) => !l.startsWith("file ")), [
          "pool xtcp_flat_record/v1/xtcp_flat_record.proto",
          "method xtcp_flat_record.v1.XTCPFlatRecordService/FlatRecords",
          "method xtcp_flat_record.v1.XTCPFlatRecordService/PollFlatRecords",
        ]);
        // A method, a nested enum, a message: each found in its file, which loads with its imports.
        for (
          const [symbol, file] of [
            ["xtcp_config.v1.ConfigService.SetPollFrequency", "xtcp_config/v1/xtcp_config.proto"],
            ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
            ["xtcp_config.v1.XtcpConfig", "xtcp_config/v1/xtcp_config.proto"],
          ]
        ) {
          const r = await interop(g, ["reflect", v, "symbol", symbol]);
          assert.equal(r.code, 0, r.lines.join("\n"));
          assert.ok(r.lines.includes(`pool ${file}`), r.lines.join("\n"));
          assert.ok(r.lines.includes(`file ${file}`), r.lines.join("\n"));
        }
        const cfg = await interop(g, [
          "reflect",
          v,
          "filename",
          "xtcp_config/v1/xtcp_config.proto",
        ]);
        assert.ok(cfg.lines.includes("file google/protobuf/duration.proto"), "with its import");
        const none = await interop(g, ["reflect", v, "symbol", "no.Such"]);
        assert.deepEqual(none.lines, ["error 5 symbol no.Such not found"]);
      }
      assert.deepEqual((await interop(g, ["health-check"])).lines, ["SERVING"]);
      assert.deepEqual((await interop(g, ["health-check", "xtcp_config.v1.ConfigService"])).lines, [
        "SERVING",
      ]);
      const unknown = await interop(g, ["health-check", "no.Such"]);
      assert.equal(unknown.code, 3);
      assert.match(unknown.lines[0], /^ERROR NOT_FOUND /);

      // Watch: SERVING now; NOT_SERVING as soon as SIGTERM begins the shutdown.
      const watch = new Deno.Command(PYTHON, {
        args: [INTEROP, `127.0.0.1:${g}`, "health-watch", "20"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const seen: string[] = [];
      const reading = (async () => {
        for await (const chunk of watch.stdout.pipeThrough(new TextDecoderStream())) {
          seen.push(...chunk.split("\n").filter((l) => l));
        }
      })();
      await until("Watch says SERVING", () => seen.includes("SERVING"));
      Deno.kill(await d.pid(), "SIGTERM");
      signalled = true;
      await until("Watch says NOT_SERVING", () => seen.includes("NOT_SERVING"), 3000);
      const during = await interop(g, ["health-check"]);
      assert.deepEqual(during.lines, ["NOT_SERVING"], "Check during the shutdown drain");
      const { code } = await watch.status;
      await reading;
      await watch.stderr.cancel();
      assert.deepEqual(seen.slice(0, 2), ["SERVING", "NOT_SERVING"], seen.join());
      // The stream ends with the server (END), or the connection with the process.
      assert.ok(seen[2] === "END" || /^ERROR UNAVAILABLE/.test(seen[2] ?? ""), seen.join());
      assert.ok(code === 0 || code === 3, `watch exit ${code}`);
    } finally {
      const { code, log } = await stop(d, signalled);
      assert.equal(code, 0, log);
      assert.match(log, /SIGTERM caught/);
    }
  },
});

Deno.test({
  name:
    "/metrics: the original's Netlinker and Deserialize triples from real counts (recvmsg, --pipeline, --ioUring); promtool remarks only xtcp_counts and xtcp_gauge",
  ignore: missing(PROMTOOL, "promtool tests (apt install prometheus)"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 30, bytes: 100 });
    for (const extra of [[], ["-pipeline"], ["-ioUring"]]) {
      const d = daemon("null", "protobufList", extra, load.netns);
      try {
        await ready(d);
        await until("three polls", () => [...d.log().matchAll(/poll \d+: /g)].length >= 3);
        const { text } = await scrape(d.httpPort);
        const count = (fn: string, variable: string, type = "count") =>
          sample(text, "xtcp_counts", `function="${fn}",variable="${variable}",type="${type}"`);
        // The poll lines the scrape covers: as many as pollingLoops says (counted together).
        const loops = count("Poller", "pollingLoops");
        const polls = [...d.log().matchAll(/poll \d+: (\d+) namespaces, (\d+) sockets/g)].slice(
          0,
          loops,
        );
        assert.equal(polls.length, loops, d.log());
        const sockets = polls.reduce((n, m) => n + Number(m[2]), 0);
        const dumps = polls.reduce((n, m) => n + Number(m[1]), 0);
        const what = `${extra.join(" ") || "recvmsg"}:\n${text}`;
        let fn = "Netlinker";
        let calls = "RecvfromCalls";
        if (extra.includes("-ioUring")) {
          if (/io_uring unavailable/.test(d.log())) {
            console.error(`SKIP the NetlinkerIoUring counters: ${d.log()}`);
          } else {
            [fn, calls] = ["NetlinkerIoUring", "recv"];
            assert.equal(count("Netlinker", "p"), 0, what);
          }
        }
        assert.ok(loops >= 3, what);
        assert.equal(count(fn, "p"), sockets, `p = records: ${what}`);
        assert.equal(count("Deserialize", "envelopeAppend"), sockets, what);
        const packets = count(fn, "packets");
        assert.ok(packets >= dumps, what);
        assert.equal(count(fn, calls), packets, what);
        assert.equal(count("Deserialize", "start"), packets, what);
        assert.ok(count(fn, "n") > sockets * 88, `n = bytes: ${what}`);
        assert.ok(count(fn, "complete") >= dumps, what);
        assert.equal(count(fn, "Timeout"), 0, what);

        const { findings } = await promtoolCheck(text);
        assert.deepEqual(findings.sort(), [
          'xtcp_counts counter metrics should have "_total" suffix',
          "xtcp_gauge metric name should not include type 'gauge'",
        ]);
        assert.doesNotMatch(text, /^# TYPE \S+_total gauge$/m);
      } finally {
        const { code, log } = await stop(d);
        assert.equal(code, 0, log);
      }
    }
  },
});

Deno.test({
  name: "with --apiToken, gRPC health stays open (a probe) and reflection needs the token",
  ignore: NO_GRPCIO,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const d = daemon("null", "protobufList", ["-apiToken", "s3cret"]);
    try {
      await ready(d);
      assert.deepEqual((await interop(d.grpcPort, ["health-check"])).lines, ["SERVING"]);
      const refused = await interop(d.grpcPort, ["reflect", "v1", "list"]);
      assert.equal(refused.code, 3);
      assert.match(refused.lines[0], /^ERROR UNAUTHENTICATED /);
      const listed = await interop(d.grpcPort, ["reflect", "v1", "list"], "s3cret");
      assert.deepEqual(listed.lines, SERVICES);
    } finally {
      const { code, log } = await stop(d);
      assert.equal(code, 0, log);
    }
  },
});

Deno.test({
  name: "gRPC health says NOT_SERVING before the poll loop starts (the destination still opening)",
  ignore: NO_GRPCIO,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // A Kafka "broker" that takes the connection and never answers: the daemon waits 5 s for it
    // with its API up, then gives up (exit 1).
    await using silent = silentServer();
    const d = daemon(`kafka:127.0.0.1:${silent.port}`, "protobufList");
    try {
      let answer: string | undefined;
      await until("a health answer while the destination opens", async () => {
        const r = await interop(d.grpcPort, ["health-check"]);
        if (r.code === 0) answer = r.lines[0];
        else assert.match(r.lines[0] ?? "", /^ERROR UNAVAILABLE /); // not listening yet
        return answer !== undefined;
      }, 10_000);
      assert.equal(answer, "NOT_SERVING");
      const { code } = await d.child.status;
      assert.equal(code, 1, d.log());
      assert.match(d.log(), /cannot start: kafka 127\.0\.0\.1:\d+: /);
    } finally {
      await stop(d);
    }
  },
});
