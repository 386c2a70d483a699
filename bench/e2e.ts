/**
 * End-to-end benchmark (`deno task bench:e2e`): for N = 1,000, 10,000 and 50,000 established
 * loopback connections (2N sockets, IPv4 and IPv6) in a fresh namespace, and for 500 namespaces
 * × 40 connections, measures in one run:
 *
 * - floor: the kernel's dump through our FFI socket, receive only;
 * - full: one daemon poll (dump IPv4 + IPv6, decode, encode protobufList, destination null);
 * - `ss -tinHO` in the same namespace (20 runs in a loop; mean, CPU from the shell's cutime/cstime);
 *
 * with wall and CPU ms per poll (medians of `--polls` after `--warmup`), ns per socket, ratios to
 * the floor, the longest GC pause during the full polls (V8 --trace-gc), the process's peak RSS,
 * and decode + encode per socket from a replay of one recorded dump. Prints the table and rewrites
 * the README's `e2e` section.
 *
 *   deno task bench:e2e [--conns 1000,10000,50000] [--polls 20] [--warmup 5] [--namespaces 500]
 *                       [--nsConns 40] [--idle MS] [--no-readme]
 *
 * Floor and full polls alternate back to back (`--idle MS` sleeps between them instead).
 */
import { parseArgs } from "node:util";
import { startLoad, startManyNamespaces } from "../tests/support/loadgen/loadgen.ts";
import { machineLine, rewriteReadmeSection } from "./machine.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    conns: { type: "string", default: "1000,10000,50000" },
    polls: { type: "string", default: "20" },
    warmup: { type: "string", default: "5" },
    namespaces: { type: "string", default: "500" },
    nsConns: { type: "string", default: "40" },
    idle: { type: "string", default: "0" },
    "no-readme": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "usage: deno task bench:e2e [--conns 1000,10000,50000] [--polls 20] [--warmup 5] [--namespaces 500] [--nsConns 40] [--idle MS] [--no-readme]",
  );
  Deno.exit(0);
}

const RUNNER = new URL("./e2e_runner.ts", import.meta.url).pathname;

interface Sample {
  wallMs: number;
  cpuMs: number;
}
interface RunnerResult {
  names: number;
  sockets: number;
  calibrationMs: number;
  fullWindows: [number, number][];
  intrRetries: number;
  floor: Sample[];
  full: Sample[];
  fullUring: Sample[];
  fullPipeline: Sample[];
  uring: { available: boolean; enters: number; packets: number };
  replay: { sockets: number; nsPerSocket: number };
  rssMaxMb: number;
}
interface Row {
  label: string;
  sockets: number;
  floor: Sample;
  full: Sample;
  fullUring?: Sample;
  fullPipeline?: Sample;
  /** Datagrams per io_uring_enter. */
  uringBatch: number;
  ss?: Sample;
  gcMaxMs: number;
  rssMb: number;
  replayNs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const medianSample = (xs: Sample[]): Sample => ({
  wallMs: median(xs.map((x) => x.wallMs)),
  cpuMs: median(xs.map((x) => x.cpuMs)),
});

/** V8 --trace-gc lines: [isolate ms, pause ms, kind]. */
function gcEvents(trace: string): { at: number; pause: number; forced: boolean }[] {
  const out = [];
  for (const line of trace.split("\n")) {
    const m = /\s(\d+) ms: ([A-Za-z -]+?)[ (].*?MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms.*/
      .exec(line);
    if (m) out.push({ at: Number(m[1]), pause: Number(m[3]), forced: /testing/.test(line) });
  }
  return out;
}

async function runRunner(names: string[]): Promise<{ r: RunnerResult; gcMaxMs: number }> {
  const out = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const res = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-ffi",
        "--allow-read",
        `--allow-write=${out}`,
        "--v8-flags=--trace-gc,--expose-gc",
        RUNNER,
        "--ns",
        names.join(","),
        "--polls",
        values.polls,
        "--warmup",
        values.warmup,
        "--out",
        out,
        "--idle",
        values.idle,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!res.success) throw new Error(`e2e_runner failed (exit ${res.code})`);
    const r = JSON.parse(Deno.readTextFileSync(out)) as RunnerResult;
    const events = gcEvents(new TextDecoder().decode(res.stdout));
    // The forced GC at calibration ties V8's isolate clock to the runner's performance.now().
    const calib = events.find((e) => e.forced);
    const offset = calib ? calib.at - r.calibrationMs : 0;
    let gcMaxMs = 0;
    for (const e of events) {
      const t = e.at - offset;
      const inPoll = r.fullWindows.some(([from, to]) => t >= from - 1 && t <= to + 1);
      if (!e.forced && inPoll) gcMaxMs = Math.max(gcMaxMs, e.pause);
    }
    return { r, gcMaxMs };
  } finally {
    await Deno.remove(out).catch(() => {});
  }
}

/** `ss -tinHO` run `runs` times inside the namespace: mean wall and CPU per run. */
async function ssCost(netns: string, runs = 20): Promise<Sample> {
  const script = `i=0; while [ $i -lt ${runs} ]; do ss -tinHO > /dev/null; i=$((i+1)); done; ` +
    "cat /proc/$$/stat";
  const t0 = performance.now();
  const res = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, "sh", "-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wallMs = (performance.now() - t0) / runs;
  if (!res.success) throw new Error(`ss: ${new TextDecoder().decode(res.stderr)}`);
  const stat = new TextDecoder().decode(res.stdout);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 (cutime, cstime) in clock ticks of 10 ms; after ")" field 3 is index 0.
  const ticks = Number(f[16 - 3]) + Number(f[17 - 3]);
  return { wallMs, cpuMs: (ticks * 10) / runs };
}

function row(label: string, run: { r: RunnerResult; gcMaxMs: number }, ss?: Sample): Row {
  return {
    label,
    sockets: run.r.sockets,
    floor: medianSample(run.r.floor),
    full: medianSample(run.r.full),
    ...(run.r.fullUring.length ? { fullUring: medianSample(run.r.fullUring) } : {}),
    ...(run.r.fullPipeline.length ? { fullPipeline: medianSample(run.r.fullPipeline) } : {}),
    uringBatch: run.r.uring.enters ? run.r.uring.packets / run.r.uring.enters : 0,
    ...(ss ? { ss } : {}),
    gcMaxMs: run.gcMaxMs,
    rssMb: run.r.rssMaxMb,
    replayNs: run.r.replay.nsPerSocket,
  };
}

const rows: Row[] = [];
for (const n of values.conns.split(",").map(Number).filter((x) => x > 0)) {
  console.error(`bench:e2e: ${n} connections…`);
  await using load = await startLoad({ conns: n, bytes: 100 });
  const run = await runRunner([load.netns]);
  rows.push(row(`${n.toLocaleString("en")} conns`, run, await ssCost(load.netns)));
}
const k = Number(values.namespaces);
if (k > 0) {
  const per = Number(values.nsConns);
  console.error(`bench:e2e: ${k} namespaces × ${per} connections…`);
  await using many = await startManyNamespaces(k, { conns: per, bytes: 100 });
  rows.push(row(`${k} ns × ${per} conns`, await runRunner(many.names)));
}

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const ns = (ms: number, sockets: number) => ((ms * 1e6) / sockets).toFixed(0);
const lines = [
  "| case | sockets | path | wall ms | CPU ms | wall ns/socket | CPU ns/socket | wall × floor | CPU × floor |",
  "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const r of rows) {
  const paths: [string, Sample | undefined][] = [
    ["floor (dump, receive only)", r.floor],
    ["full poll (decode, encode, null)", r.full],
    ["full poll, `--ioUring`", r.fullUring],
    ["full poll, `--pipeline` (worker decodes)", r.fullPipeline],
    ["`ss -tinHO`", r.ss],
  ];
  for (const [name, s] of paths) {
    if (!s) continue;
    lines.push(
      `| ${r.label} | ${r.sockets} | ${name} | ${f1(s.wallMs)} | ${f1(s.cpuMs)} | ${
        ns(s.wallMs, r.sockets)
      } | ${ns(s.cpuMs, r.sockets)} | ${f2(s.wallMs / r.floor.wallMs)} | ${
        f2(s.cpuMs / r.floor.cpuMs)
      } |`,
    );
  }
}
const extra = [
  "",
  "| case | decode + encode ns/socket (replay) | longest GC pause in a full poll, ms | peak RSS MB | datagrams per io_uring_enter |",
  "| --- | ---: | ---: | ---: | ---: |",
  ...rows.map((r) =>
    `| ${r.label} | ${r.replayNs.toFixed(0)} | ${f1(r.gcMaxMs)} | ${r.rssMb.toFixed(0)} | ${
      r.uringBatch ? f1(r.uringBatch) : "n/a"
    } |`
  ),
];
const body = [
  await machineLine(),
  `Medians of ${values.polls} polls after ${values.warmup} warm-up polls, floor and full alternating${
    Number(values.idle) ? ` with ${values.idle} ms idle between` : " back to back"
  }; CPU is user + sys of the`,
  "whole process (all threads; the kernel's dump work is sys time inside recvmsg). `ss` is the",
  "mean of 20 runs in a shell loop (CPU from the shell's children times, 10 ms ticks).",
  "",
  ...lines,
  ...extra,
].join("\n");
console.log(body);
if (!values["no-readme"]) await rewriteReadmeSection("e2e", body, "bench:e2e");
