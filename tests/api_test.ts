/**
 * The running daemon's API and health: gRPC ConfigService and XTCPFlatRecordService (from our
 * clients and from python3-grpcio's C core), bearer token, loopback listeners, live streams with
 * a stuck client, Prometheus exposition checked by promtool, /healthz /readyz, --healthcheck, and
 * the xtcp2client / xtcp2ctl entrypoints run with their tasks' permissions.
 */
import assert from "node:assert/strict";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  ConfigService,
  GetResponseSchema,
  SetPollFrequencyResponseSchema,
} from "../src/gen/xtcp_config/v1/xtcp_config_pb.ts";
import {
  FlatRecordsResponseSchema,
  XtcpFlatRecordSchema,
  XTCPFlatRecordService,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { baseUrl, transport } from "../src/cmd/client_common.ts";
import { Http2SessionManager } from "@connectrpc/connect-node";
import type { Transport } from "@connectrpc/connect";
import { renderTable } from "../src/cmd/xtcp2client.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { PROMTOOL, promtoolCheck } from "./support/daemon.ts";
import { freePort, runTask, spawnXtcp2, taskArgv, until, xtcp2, xtcp2Argv } from "./support/run.ts";
import { spawnIsolated } from "./support/delivery.ts";

const dec = new TextDecoder();
/**
 * The load's sockets only (its listeners' ports, reserved in its namespace): the daemon's own
 * namespace, which it always polls, has whatever else runs on the host.
 */
const LOAD_ONLY = [
  "--filter",
  "(sport >= :20000 and sport <= :20999) or (dport >= :20000 and dport <= :20999)",
];
const INTEROP = new URL("./support/grpc_interop.py", import.meta.url).pathname;

/** A daemon started for one test, with its own ports; stopped (SIGTERM) on dispose. */
interface Running extends AsyncDisposable {
  child: Deno.ChildProcess;
  grpcPort: number;
  httpPort: number;
  /** stderr so far. */
  log(): string;
  /**
   * A transport to its API whose HTTP/2 connection stop() closes first (Deno's nghttp2 can abort
   * the process when a server's GOAWAY reaches a client session that is still open).
   */
  transport(token?: string): Transport;
  /** SIGTERM, then the exit code and the whole stderr. */
  stop(): Promise<{ code: number; log: string }>;
}

async function startDaemon(
  args: string[],
  opts: { env?: Record<string, string>; bind?: string; only?: string } = {},
): Promise<Running> {
  const grpcPort = freePort();
  const httpPort = freePort();
  const bind = opts.bind ? ["--grpcAddress", opts.bind] : [];
  const all = [
    "--grpcPort",
    String(grpcPort),
    "--promListen",
    `${opts.bind ?? "127.0.0.1"}:${httpPort}`,
    ...bind,
    ...args,
  ];
  // `only`: seeing only that namespace besides its own (other work on the host stays out).
  const proc = opts.only === undefined ? undefined : spawnIsolated(xtcp2Argv(all), opts.only);
  const child = proc?.child ?? spawnXtcp2(all, { env: opts.env ?? {} });
  let text = "";
  const drained = proc?.drained ?? (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
  })();
  const log = () => proc?.log() ?? text;
  const stdout = proc ? Promise.resolve() : child.stdout.cancel();
  let stopped: Promise<{ code: number; log: string }> | undefined;
  const sessions: Http2SessionManager[] = [];
  const stop = () =>
    stopped ??= (async () => {
      for (const s of sessions) s.abort();
      try {
        // Under unshare the daemon is its child: signals are not passed on.
        if (proc) Deno.kill(await proc.pid(), "SIGTERM");
        else child.kill("SIGTERM");
      } catch {
        // already exited: its status says how
      }
      const { code } = await child.status;
      await drained;
      await stdout;
      return { code, log: log() };
    })();
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const { log } = await stop();
      throw new Error(`the daemon never became ready:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    grpcPort,
    httpPort,
    log,
    transport: (token = "") => {
      const s = new Http2SessionManager(baseUrl({ target: "127.0.0.1", port: String(grpcPort) }));
      sessions.push(s);
      return transport({ target: "127.0.0.1", port: String(grpcPort), token }, s);
    },
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

/** Runs the python3-grpcio client. */
async function interop(
  port: number,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; lines: string[]; stderr: string }> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [INTEROP, `127.0.0.1:${port}`, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    lines: dec.decode(out.stdout).split("\n").filter((l) => l),
    stderr: dec.decode(out.stderr),
  };
}

function b64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function rejectsWith(p: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(Code[err.code], Code[code], err.rawMessage);
    assert.match(err.rawMessage, message);
    return true;
  });
}

async function metricsText(port: number, token = ""): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return text;
}

/** Value of one exposition sample (0 when absent). */
function sample(text: string, name: string, labels: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{${labels}}`)) return Number(line.split(" ").at(-1));
  }
  return 0;
}

Deno.test({
  name:
    "ConfigService: Get, SetPollFrequency, TriggerPoll, bursts; invalid requests are INVALID_ARGUMENT naming the field; Set swaps the config in the same process and loses no row",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync();
    try {
      const d = await startDaemon([
        "--frequency",
        "2s",
        "--timeout",
        "1s",
        "--dest",
        `file:${dir}/out.jsonl`,
        "--marshal",
        "jsonl",
        "--tag",
        "first",
      ]);
      const pid = d.child.pid;
      try {
        const api = createClient(
          ConfigService,
          d.transport(),
        );
        const got = (await api.get({})).config!;
        assert.equal(got.pollFrequency?.seconds, 2n);
        assert.equal(got.tag, "first");
        assert.equal(got.grpcPort, d.grpcPort);

        await rejectsWith(
          api.setPollFrequency({
            pollFrequency: { seconds: 2n },
            pollTimeout: { seconds: 5n },
          }),
          Code.InvalidArgument,
          /timeout.*(less|shorter|below|frequency)/i,
        );
        await rejectsWith(
          api.setPollFrequency({ pollFrequency: { seconds: 3n } }),
          Code.InvalidArgument,
          /poll_timeout is required/,
        );
        await rejectsWith(
          api.triggerPollBurst({ count: 0, interval: { seconds: 5n } }),
          Code.InvalidArgument,
          /count 0: must be from 1 to 1000/,
        );
        await rejectsWith(
          api.triggerPollBurst({ count: 2, interval: { nanos: 500_000_000 } }),
          Code.InvalidArgument,
          /interval 500 ms/,
        );
        const tooLong = { ...got, tag: "x".repeat(41) };
        await rejectsWith(api.set({ config: tooLong }), Code.InvalidArgument, /tag/);
        await rejectsWith(
          api.set({ config: { ...got, grpcPort: got.grpcPort + 1 } }),
          Code.InvalidArgument,
          /grpc_port .*cannot change at runtime/,
        );
        await rejectsWith(api.set({}), Code.InvalidArgument, /config is required/);
        await rejectsWith(
          api.setS3Upload({ s3ParquetFlushThresholdBytes: 1000 }),
          Code.FailedPrecondition,
          /not s3parquet/,
        );

        const fast = await api.setPollFrequency({
          pollFrequency: { seconds: 3n },
          pollTimeout: { seconds: 1n },
        });
        assert.equal(fast.config?.pollFrequency?.seconds, 3n);
        assert.equal((await api.get({})).config?.pollFrequency?.seconds, 3n);

        const polls = () => [...d.log().matchAll(/poll (\d+): /g)].length;
        const before = polls();
        await api.triggerPoll({});
        await until("the triggered poll", () => polls() > before);
        const burst = await api.triggerPollBurst({ count: 2, interval: { seconds: 2n } });
        assert.equal(burst.count, 2);
        await rejectsWith(
          api.triggerPollBurst({ count: 2, interval: { seconds: 2n } }),
          Code.ResourceExhausted,
          /already running/,
        );

        // Set: new values in Get and in the records' stamps, from the same process.
        const next = { ...(await api.get({})).config!, tag: "second", label: "relabelled" };
        const applied = await api.set({ config: next });
        assert.equal(applied.config?.tag, "second");
        const after = (await api.get({})).config!;
        assert.equal(after.tag, "second");
        assert.equal(after.label, "relabelled");
        const rows = () =>
          Deno.readTextFileSync(`${dir}/out.jsonl`).split("\n").filter((l) => l).map((l) =>
            JSON.parse(l) as { tag: string; label: string }
          );
        await until(
          "a record stamped with the new tag",
          () => rows().some((r) => r.tag === "second"),
        );
        assert.ok(
          rows().every((r) => r.tag === "second" ? r.label === "relabelled" : r.tag === "first"),
        );
        const res = await fetch(`http://127.0.0.1:${d.httpPort}/readyz`);
        assert.equal(res.status, 200, await res.text());
        assert.equal(d.child.pid, pid);
        const metrics = await metricsText(d.httpPort);
        assert.equal(
          sample(
            metrics,
            "xtcp_config_grpc_counts",
            'function="Set",variable="reconfigure",type="count"',
          ),
          1,
        );
        assert.ok(
          sample(
            metrics,
            "xtcp_config_grpc_counts",
            'function="Set",variable="Validate",type="error"',
          ) >= 3,
        );
        assert.equal(
          sample(metrics, "xtcp_counts", 'function="Poller",variable="ticker.Reset",type="count"'),
          1,
        );

        const { code, log } = await d.stop();
        assert.equal(code, 0, log);
        assert.equal(log.match(/started: /g)?.length, 2, log); // one process, two loops
        // No row lost across the swap: every socket a poll reported is in the file.
        const reported = [...log.matchAll(/poll \d+: \d+ namespaces, (\d+) sockets/g)]
          .reduce((n, m) => n + Number(m[1]), 0);
        assert.equal(rows().length, reported, log);
      } finally {
        await d.stop();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "python3-grpcio (C core) drives the API: Get, SetPollFrequency, an invalid request, and a stream of records that decode",
  ignore: (() => {
    const ok = new Deno.Command("/usr/bin/python3", { args: ["-c", "import grpc"] }).outputSync()
      .success;
    if (!ok) {
      console.error(
        "SKIP grpc interop: /usr/bin/python3 cannot import grpc (apt install python3-grpcio)",
      );
    }
    return !ok;
  })(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 50, bytes: 100 });
    await using d = await startDaemon([
      "--frequency",
      "1s",
      "--timeout",
      "500ms",
      "--dest",
      "null",
      ...LOAD_ONLY,
    ], { only: load.netns });
    const get = await interop(d.grpcPort, ["get"]);
    assert.equal(get.code, 0, get.stderr + get.lines.join("\n"));
    const cfg = fromBinary(GetResponseSchema, b64(get.lines[0])).config!;
    assert.equal(cfg.grpcPort, d.grpcPort);
    assert.equal(cfg.pollFrequency?.seconds, 1n);

    const set = await interop(d.grpcPort, ["set-poll-frequency", "4", "2"]);
    assert.equal(set.code, 0, set.stderr + set.lines.join("\n"));
    const res = fromBinary(SetPollFrequencyResponseSchema, b64(set.lines[0])).config!;
    assert.equal(res.pollFrequency?.seconds, 4n);
    assert.equal(res.pollTimeout?.seconds, 2n);

    const bad = await interop(d.grpcPort, ["set-poll-frequency", "2", "4"]);
    assert.equal(bad.code, 3, bad.stderr);
    assert.match(bad.lines[0], /^ERROR INVALID_ARGUMENT .*timeout/);

    const stream = await interop(d.grpcPort, ["records", "60"]);
    assert.equal(stream.code, 0, stream.stderr);
    assert.equal(stream.lines.length, 60);
    const records = stream.lines.map((l) =>
      fromBinary(FlatRecordsResponseSchema, b64(l)).xtcpFlatRecord!
    );
    const fromLoad = records.filter((r) => r.netns === load.netns);
    assert.ok(fromLoad.length > 0, `no record from ${load.netns}`);
    for (const r of records) {
      assert.ok(r.hostname.length > 0);
      assert.ok(
        r.inetDiagMsgFamily === 2 || r.inetDiagMsgFamily === 10,
        String(r.inetDiagMsgFamily),
      );
      assert.ok(r.timestampNs > 0n);
    }
    assert.ok(fromLoad.some((r) => r.congestionAlgorithmString !== "" && r.tcpInfoRtt > 0));
  },
});

Deno.test({
  name:
    "listeners bind loopback by default, other addresses by flag; the bearer token guards gRPC and /metrics, not the probes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const listening = async (port: number) => {
      const out = await new Deno.Command("ss", { args: ["-Hltn", `sport = :${port}`] }).output();
      return dec.decode(out.stdout).trim().split(/\s+/)[3] ?? "";
    };
    {
      await using d = await startDaemon(["--dest", "null"]);
      assert.equal(await listening(d.grpcPort), `127.0.0.1:${d.grpcPort}`);
      assert.equal(await listening(d.httpPort), `127.0.0.1:${d.httpPort}`);
    }
    const token = "s3cret-token";
    await using d = await startDaemon(["--dest", "null"], {
      bind: "0.0.0.0",
      env: { XTCP_API_TOKEN: token },
    });
    const { grpcPort, httpPort } = d;
    assert.equal(await listening(grpcPort), `0.0.0.0:${grpcPort}`);
    assert.equal(await listening(httpPort), `0.0.0.0:${httpPort}`);

    const anonymous = createClient(
      ConfigService,
      d.transport(),
    );
    await rejectsWith(anonymous.get({}), Code.Unauthenticated, /bearer token/);
    const wrong = createClient(
      ConfigService,
      d.transport("guess"),
    );
    await rejectsWith(wrong.get({}), Code.Unauthenticated, /bearer token/);
    const authorised = createClient(
      ConfigService,
      d.transport(token),
    );
    assert.equal((await authorised.get({})).config?.grpcPort, grpcPort);
    const py = await interop(grpcPort, ["get"], { XTCP_API_TOKEN: token });
    assert.equal(py.code, 0, py.lines.join("\n") + py.stderr);
    const pyAnon = await interop(grpcPort, ["get"]);
    assert.match(pyAnon.lines[0], /^ERROR UNAUTHENTICATED/);

    const noAuth = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
    assert.equal(noAuth.status, 401, await noAuth.text());
    assert.match(await metricsText(httpPort, token), /^xtcp_gauge \d+$/m);
    for (const probe of ["healthz", "readyz"]) {
      const r = await fetch(`http://127.0.0.1:${httpPort}/${probe}`);
      assert.equal(r.status, 200, await r.text());
    }
  },
});

Deno.test({
  name:
    "a stuck stream client never slows collection: its bounded queue drops (counted) while a reading client gets every poll",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 1000, bytes: 10 });
    await using d = await startDaemon([
      "--frequency",
      "1s",
      "--timeout",
      "900ms",
      "--pollJitterPct",
      "0",
      "--dest",
      "null",
      "--streamQueue",
      "300",
    ]);
    const t = d.transport();
    const stuckCtl = new AbortController();
    const stuck = createClient(XTCPFlatRecordService, t).flatRecords({}, {
      signal: stuckCtl.signal,
    });
    const it = stuck[Symbol.asyncIterator]();
    await it.next(); // subscribed; then never read again

    const readerCtl = new AbortController();
    let received = 0;
    const fromLoad = new Set<string>();
    const reading = (async () => {
      try {
        for await (
          const m of createClient(XTCPFlatRecordService, t).flatRecords({}, {
            signal: readerCtl.signal,
          })
        ) {
          received++;
          if (m.xtcpFlatRecord?.netns === load.netns) {
            fromLoad.add(String(m.xtcpFlatRecord.inetDiagMsgSocketCookie));
          }
        }
      } catch (err) {
        if (!readerCtl.signal.aborted) throw err;
      }
    })();
    const polls = () => [...d.log().matchAll(/^xtcp2: poll (\d+): .*, ([\d.]+) ms$/gm)];
    const first = polls().length;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 6000));
    const elapsed = (performance.now() - t0) / 1000;
    const done = polls().slice(first);
    // 1 s cadence kept: about one poll per second, none overran.
    assert.ok(
      done.length >= Math.floor(elapsed) - 1,
      `${done.length} polls in ${elapsed} s\n${d.log()}`,
    );
    assert.doesNotMatch(d.log(), /overran/);
    // The reading client saw every socket of the load namespace (2 per connection).
    assert.ok(
      fromLoad.size >= 2000,
      `reader saw ${fromLoad.size} load sockets of ${received} records`,
    );
    const metrics = await metricsText(d.httpPort);
    const drops = sample(
      metrics,
      "xtcp_record_grpc_counts",
      'function="FlatRecords",variable="chFull",type="drop"',
    );
    assert.ok(drops > 1000, `drops ${drops}`);
    assert.equal(
      sample(
        metrics,
        "xtcp_counts",
        'function="flatRecordServiceSend",variable="chFull",type="drop"',
      ),
      drops,
    );
    assert.ok(
      sample(
        metrics,
        "xtcp_counts",
        'function="flatRecordServiceSend",variable="frSent",type="count"',
      ) >=
        received,
    );
    stuckCtl.abort();
    readerCtl.abort();
    await reading;
    await it.return?.();
  },
});

Deno.test({
  name:
    "/metrics passes promtool check metrics (only the reference's own names are linted); families, labels; /healthz, /readyz, --healthcheck 0 and 1",
  ignore: (() => {
    try {
      Deno.statSync(PROMTOOL);
      return false;
    } catch {
      console.error(`SKIP promtool tests: ${PROMTOOL} missing (apt install prometheus)`);
      return true;
    }
  })(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using d = await startDaemon([
      "--frequency",
      "1s",
      "--timeout",
      "500ms",
      "--dest",
      "null",
    ]);
    await until("two polls", () => [...d.log().matchAll(/poll \d+: /g)].length >= 2);
    const text = await metricsText(d.httpPort);
    const out = await promtoolCheck(text);
    const findings = out.findings;
    // Names kept for wire compatibility with the reference's dashboards, and prom-client's own.
    const known = [
      /^xtcp_counts counter metrics should have "_total" suffix$/,
      /^xtcp_gauge metric name should not include type 'gauge'$/,
    ];
    for (const f of findings) assert.ok(known.some((k) => k.test(f)), `promtool: ${f}`);
    assert.ok([0, 3].includes(out.code), `promtool exit ${out.code}: ${findings.join("\n")}`); // 3 = lint only

    for (
      const family of [
        "xtcp_counts",
        "xtcp_histograms",
        "xtcp_gauge",
        "xtcp_config_grpc_counts",
        "xtcp_record_grpc_counts",
      ]
    ) {
      assert.match(text, new RegExp(`^# TYPE ${family} `, "m"), family);
    }
    assert.match(text, /^# TYPE xtcp_histograms summary$/m);
    assert.match(
      text,
      /^xtcp_counts\{function="Poller",variable="pollingLoops",type="count"\} [1-9]/m,
    );
    assert.match(
      text,
      /^xtcp_histograms\{quantile="0\.99",function="Poller",variable="pollDuration",type="count"\} /m,
    );
    assert.match(text, /^xtcp_gauge [1-9]\d*$/m);
    assert.match(text, /^process_cpu_seconds_total \d/m);
    assert.match(text, /^process_resident_memory_bytes \d/m);

    for (const probe of ["healthz", "readyz"]) {
      const r = await fetch(`http://127.0.0.1:${d.httpPort}/${probe}`);
      assert.equal(r.status, 200, await r.text());
    }
    const missing = await fetch(`http://127.0.0.1:${d.httpPort}/nope`);
    assert.equal(missing.status, 404, await missing.text());
    const ok = await xtcp2(["--healthcheck", "--promListen", `127.0.0.1:${d.httpPort}`]);
    assert.equal(ok.code, 0, ok.stderr);
    const none = await xtcp2(["--healthcheck", "--promListen", `127.0.0.1:${freePort()}`]);
    assert.equal(none.code, 1, none.stderr);
  },
});

Deno.test({
  name:
    "xtcp2client (JSON lines, table by rtt/retrans/bytes) and xtcp2ctl (every command) with their tasks' permissions; --help on every binary",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    for (const task of ["xtcp2", "xtcp2client", "xtcp2ctl"]) {
      const help = await runTask(task, ["--help"]);
      assert.equal(help.code, 0, dec.decode(help.stderr));
      assert.match(dec.decode(help.stdout), /^(xtcp2 .*\n\n)?Usage:/, task);
    }
    assert.deepEqual(taskArgv("xtcp2client").filter((w) => w.startsWith("--")), ["--allow-net"]);

    await using load = await startLoad({ conns: 20, bytes: 1000 });
    await using d = await startDaemon([
      "--frequency",
      "1s",
      "--timeout",
      "500ms",
      "--dest",
      "null",
      ...LOAD_ONLY,
    ], { only: load.netns });
    const port = ["--port", String(d.grpcPort), "--target", "127.0.0.1"];

    const json = await runTask("xtcp2client", [...port, "--count", "30"]);
    assert.equal(json.code, 0, dec.decode(json.stderr));
    const lines = dec.decode(json.stdout).trim().split("\n");
    assert.equal(lines.length, 30);
    for (const l of lines) {
      const r = JSON.parse(l);
      assert.ok("inet_diag_msg_family" in r && "hostname" in r, l);
    }

    const table = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        ...taskArgv("xtcp2client"),
        ...port,
        "--format",
        "table",
        "--sort",
        "bytes",
        "--refresh",
        "300ms",
        "--top",
        "5",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await new Promise((r) => setTimeout(r, 3000));
    table.kill("SIGTERM");
    const shown = await table.output();
    const screens = dec.decode(shown.stdout).split("\x1b[2J\x1b[H").filter((s) => s.trim());
    const last = screens.at(-1)?.trim().split("\n") ?? [];
    assert.match(last[0] ?? "", /^NETNS\s+STATE\s+LOCAL\s+PEER\s+RTT ms\s+RETRANS\s+BYTES ACKED/);
    assert.equal(last.length, 6, last.join("\n"));
    assert.ok(last.slice(1).some((l) => l.startsWith(load.netns)), last.join("\n"));
    const bad = await runTask("xtcp2client", [...port, "--sort", "colour"]);
    assert.equal(bad.code, 2);
    assert.match(dec.decode(bad.stderr), /--sort: "colour": use rtt, retrans or bytes/);

    // renderTable orders by the chosen key, largest first.
    const rec = (rtt: number, retrans: number, acked: bigint, cookie: bigint) =>
      create(XtcpFlatRecordSchema, {
        netns: "n",
        inetDiagMsgFamily: 2,
        inetDiagMsgSocketCookie: cookie,
        inetDiagMsgSocketSource: new Uint8Array([127, 0, 0, 1]),
        inetDiagMsgSocketDestination: new Uint8Array([127, 0, 0, 1]),
        tcpInfoRtt: rtt,
        tcpInfoTotalRetrans: retrans,
        tcpInfoBytesAcked: acked,
        inetDiagMsgSocketSourcePort: Number(cookie),
      });
    const latest = new Map([["a", rec(300, 1, 10n, 1n)], ["b", rec(100, 9, 20n, 2n)], [
      "c",
      rec(200, 5, 30n, 3n),
    ]]);
    const order = (sort: string) =>
      renderTable(latest, sort, 3).split("\n").slice(1).map((l) => l.match(/127\.0\.0\.1:(\d)/)![1])
        .join("");
    assert.equal(order("rtt"), "132");
    assert.equal(order("retrans"), "231");
    assert.equal(order("bytes"), "321");

    // xtcp2ctl: get, set (stdin and file), set-poll-frequency, trigger-poll, poll-burst, set-s3-upload.
    const ctl = (args: string[], stdin?: string) => runTask("xtcp2ctl", [...port, ...args], stdin);
    const get = await ctl(["get"]);
    assert.equal(get.code, 0, dec.decode(get.stderr));
    const cfg = JSON.parse(dec.decode(get.stdout));
    assert.equal(cfg.grpcPort, d.grpcPort);
    const freq = await ctl(["set-poll-frequency", "--frequency", "3s", "--timeout", "1s"]);
    assert.equal(freq.code, 0, dec.decode(freq.stderr));
    assert.equal(JSON.parse(dec.decode(freq.stdout)).pollFrequency, "3s");
    const badFreq = await ctl(["set-poll-frequency", "--frequency", "1s", "--timeout", "3s"]);
    assert.equal(badFreq.code, 1);
    assert.match(dec.decode(badFreq.stderr), /^xtcp2ctl: InvalidArgument: .*timeout/);
    const trig = await ctl(["trigger-poll"]);
    assert.equal(trig.code, 0, dec.decode(trig.stderr));
    const burst = await ctl(["poll-burst", "--count", "2", "--interval", "2s"]);
    assert.equal(burst.code, 0, dec.decode(burst.stderr));
    assert.match(dec.decode(burst.stdout), /burst of 2 polls every 2s/);
    const s3 = await ctl(["set-s3-upload", "--threshold-bytes", "1000"]);
    assert.equal(s3.code, 1);
    assert.match(
      dec.decode(s3.stderr),
      /FailedPrecondition: the destination is null, not s3parquet/,
    );
    const setStdin = await ctl(["set"], JSON.stringify({ ...cfg, tag: "from-stdin" }));
    assert.equal(setStdin.code, 0, dec.decode(setStdin.stderr));
    assert.equal(JSON.parse(dec.decode(setStdin.stdout)).tag, "from-stdin");
    const file = Deno.makeTempFileSync({ suffix: ".json" });
    try {
      Deno.writeTextFileSync(file, JSON.stringify({ ...cfg, tag: "from-file" }));
      const setFile = await ctl(["set", "--file", file]);
      assert.equal(setFile.code, 0, dec.decode(setFile.stderr));
      const again = await ctl(["get"]);
      assert.equal(JSON.parse(dec.decode(again.stdout)).tag, "from-file");
    } finally {
      Deno.removeSync(file);
    }
    const badJson = await ctl(["set"], "{not json");
    assert.equal(badJson.code, 1);
    const unknown = await ctl(["reboot"]);
    assert.equal(unknown.code, 2);
    const down = await runTask("xtcp2ctl", ["--port", String(freePort()), "get"]);
    assert.equal(down.code, 1);
    assert.match(dec.decode(down.stderr), /^xtcp2ctl: Unavailable: /);
  },
});

Deno.test({
  name:
    "PollFlatRecords: each client message triggers a poll whose records stream back (the daemon's own cadence is an hour)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 100, bytes: 10 });
    await using d = await startDaemon([
      "--frequency",
      "1h",
      "--timeout",
      "10s",
      "--pollJitterPct",
      "0",
      "--dest",
      "null",
    ]);
    await until("the first poll", () => /poll 1: /.test(d.log()));
    const client = createClient(XTCPFlatRecordService, d.transport());
    const ctl = new AbortController();
    async function* asks() {
      for (let i = 0; i < 3; i++) {
        yield {};
        await new Promise((r) => setTimeout(r, 700));
      }
      await new Promise((r) => setTimeout(r, 60_000)); // keep the stream open
    }
    const stamps = new Set<bigint>();
    let fromLoad = 0;
    const timer = setTimeout(() => ctl.abort(), 15_000);
    try {
      for await (const m of client.pollFlatRecords(asks(), { signal: ctl.signal })) {
        const r = m.xtcpFlatRecord!;
        if (r.netns !== load.netns) continue;
        fromLoad++;
        stamps.add(r.timestampNs);
        if (stamps.size >= 3 && fromLoad >= 3 * 200) break;
      }
    } catch (err) {
      if (!ctl.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
      ctl.abort();
    }
    assert.ok(stamps.size >= 3, `${stamps.size} polls streamed back\n${d.log()}`);
    assert.ok(fromLoad >= 600, `${fromLoad} records of the load`);
    assert.ok([...d.log().matchAll(/poll \d+: /g)].length >= 4, d.log());
    const metrics = await metricsText(d.httpPort);
    assert.ok(
      sample(
        metrics,
        "xtcp_record_grpc_counts",
        'function="PollFlatRecords",variable="srv.Recv",type="count"',
      ) >= 3,
    );
  },
});
