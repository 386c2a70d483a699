/**
 * End-to-end benchmark (`deno task bench:e2e`): the daemon as users run it (bench/daemon_run.ts:
 * `xtcp2 -dest null -marshal protobufList`, default decoders, seeing only the bench's
 * namespaces) beside its floors, the kernel's own dumps of the same namespaces measured in the
 * same run by bench/e2e_runner.ts (our FFI socket, receive only): the one-walk compat request
 * and the two v2 requests. Cases:
 *
 * - `--conns` established loopback connections (2 sockets each, IPv4 and IPv6) in one
 *   namespace: the daemon, the daemon with `-pipeline`, and `ss -tinHO`;
 * - `--namespaces` × `--nsConns` connections, twice: namespaces made with the host's TCP hash
 *   table, and made while `net.ipv4.tcp_child_ehash_entries` was `--childEhash` (a table of their
 *   own; the sysctl is restored right after).
 *
 * Each daemon runs warm-up polls (`--warmup` of them, and until `--warmupSeconds` after it
 * started: the runtime's startup transients fall in them, the threads that end after 10 s idle
 * and V8's memory reducer, whose full collections of the startup heap take 40–70 ms of CPU each
 * in the first ~35 s and none after), then `--polls` measured ones, one every `--frequency` ms
 * (`--nsPolls` and `--nsFrequency` for the namespaces cases). CPU per poll: the CPU time of the
 * whole daemon process (every thread, GC included) from one sample half-way between polls to the
 * next, the sum of its threads' /proc schedstat times (exact; the process's clock ticks in
 * /proc/<pid>/stat, 10 ms each, where a thread ended in between); after each sample, while the
 * daemon sleeps, the runner dumps once with each request, so that floors and polls alternate and
 * each poll has its own floors. A case's CPU, the daemon's and its floors' alike, is the mean
 * over the measured polls; the spread is that of each poll's CPU over its own floor's. Wall: the
 * poll's own log line, and the floor's (medians). GC: the daemon runs with
 * `--v8-flags=--trace-gc`; the longest pause whose time falls in a measured poll. Peak RSS: VmHWM;
 * idle RSS: VmRSS half-way between polls. Prints the tables, rewrites the README's `e2e` section.
 *
 *   deno task bench:e2e [--conns 50000] [--namespaces 100] [--nsConns 200] [--childEhash 1024]
 *                       [--polls 20] [--nsPolls 8] [--warmup 2] [--warmupSeconds 40] [--frequency 2000]
 *                       [--nsFrequency 8000] [--no-readme]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startLoad, startManyNamespaces } from "../tests/support/loadgen/loadgen.ts";
import { benchArgs, cpuBetween, DaemonRun, median, output } from "./daemon_run.ts";
import { machineLine, rewriteReadmeSection } from "./machine.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    conns: { type: "string", default: "50000" },
    namespaces: { type: "string", default: "100" },
    nsConns: { type: "string", default: "200" },
    childEhash: { type: "string", default: "1024" },
    polls: { type: "string", default: "20" },
    nsPolls: { type: "string", default: "8" },
    warmup: { type: "string", default: "2" },
    warmupSeconds: { type: "string", default: "40" },
    frequency: { type: "string", default: "2000" },
    nsFrequency: { type: "string", default: "8000" },
    "no-readme": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "usage: deno task bench:e2e [--conns 50000] [--namespaces 100] [--nsConns 200] [--childEhash 1024] [--polls 20] [--nsPolls 8] [--warmup 2] [--warmupSeconds 40] [--frequency 2000] [--nsFrequency 8000] [--no-readme]",
  );
  Deno.exit(0);
}
const WARMUP_SECONDS = Number(values.warmupSeconds);
/** Warm-up polls at a cadence: `--warmup`, and enough to last `--warmupSeconds`. */
const warmupPolls = (frequencyMs: number) =>
  Math.max(Number(values.warmup), Math.ceil((WARMUP_SECONDS * 1000) / frequencyMs));
const RUNNER = new URL("./e2e_runner.ts", import.meta.url).pathname;
// Ports above the load generator's ephemeral range, in the bench's own namespace.
const GRPC_PORT = 65113;
const PROM_PORT = 65114;

/** One measured dump or poll. */
interface Sample {
  wallMs: number;
  cpuMs: number;
}
interface Floor extends Sample {
  sockets: number;
  perNs: number[];
}

/** The floor runner of one case, driven one command at a time. */
class Runner {
  private readonly child: Deno.ChildProcess;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  private readonly lines: AsyncIterator<string>;

  constructor(names: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-ffi", "--allow-read", RUNNER, "--ns", names.join(",")],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.writer = this.child.stdin.getWriter();
    this.lines = lineIterator(this.child.stdout);
  }

  async cmd<T>(c: "one" | "two" | "replay"): Promise<T> {
    await this.writer.write(new TextEncoder().encode(c + "\n"));
    const r = await this.lines.next();
    if (r.done) throw new Error(`e2e_runner exited (${(await this.child.status).code})`);
    const v = JSON.parse(r.value) as T & { error?: string };
    if (v.error) throw new Error(`e2e_runner: ${v.error}`);
    return v;
  }

  async close(): Promise<void> {
    await this.writer.close().catch(() => {});
    const st = await this.child.status;
    if (!st.success) throw new Error(`e2e_runner exited with ${st.code}`);
  }
}

async function* lineIterator(s: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    yield* lines;
  }
}

/** V8 --trace-gc lines: isolate ms, pause ms, kind (Scavenge, Mark-Compact, …). */
function gcEvents(trace: string): { at: number; pause: number; kind: string }[] {
  const out = [];
  for (const line of trace.split("\n")) {
    const m = /\s(\d+) ms: ([A-Za-z -]+?)[ (].*?MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms.*/
      .exec(line);
    if (m) out.push({ at: Number(m[1]), pause: Number(m[3]), kind: m[2]!.trim() });
  }
  return out;
}

/** What one daemon run measured. */
interface DaemonResult {
  label: string;
  sockets: number;
  namespaces: number;
  polls: Sample[];
  /** Each measured poll's CPU over that of the one-walk floor dumped right after it. */
  pairedOne: number[];
  /** Polls whose CPU came from clock ticks (a thread ended): see cpuBetween. */
  inexact: number;
  userMs: number[];
  v8WorkersMs: number[];
  bytes: number;
  gcMaxMs: number;
  /** Its kind. */
  gcMaxKind: string;
  gcInPolls: number;
  hwmMb: number;
  idleRssMb: number;
  /** Floor rounds that ran into the daemon's next poll (the cadence is too short). */
  overlaps: number;
}

/** What one case measured. */
interface CaseResult {
  label: string;
  names: number;
  one: Floor[];
  two: Floor[];
  daemons: DaemonResult[];
  ss?: Sample;
  replayNs: number;
}

const daemonArgs = (frequencyMs: number, extra: string[]) =>
  benchArgs({ dest: "null", frequencyMs, grpcPort: GRPC_PORT, promPort: PROM_PORT, extra });

/**
 * Runs the daemon once per variant over `names`, the floors after each measured poll, then the
 * replay. `expect`: sockets each poll must see at least (the load is still there).
 */
async function measureCase(
  label: string,
  names: string[],
  expect: number,
  frequencyMs: number,
  polls: number,
  variants: [string, string[]][],
): Promise<CaseResult> {
  const runner = new Runner(names);
  const res: CaseResult = {
    label,
    names: names.length,
    one: [],
    two: [],
    daemons: [],
    replayNs: 0,
  };
  try {
    for (let i = 0; i < 2; i++) {
      await runner.cmd("one");
      await runner.cmd("two");
    }
    for (const [vlabel, extra] of variants) {
      console.error(`bench:e2e: ${label}: daemon${vlabel ? ` ${vlabel}` : ""}…`);
      const d = await DaemonRun.start(names, daemonArgs(frequencyMs, extra), {
        frequencyMs,
        v8Flags: "--trace-gc",
      });
      const WARMUP = warmupPolls(frequencyMs);
      const floorEnds = new Map<number, number>();
      const oneAfter = new Map<number, Floor>();
      let swap = false;
      try {
        for (let n = 1; n <= WARMUP + polls; n++) {
          await d.waitPoll(n);
          if (n <= WARMUP) continue;
          // Alternate which request goes first.
          for (const c of swap ? ["two", "one"] as const : ["one", "two"] as const) {
            const f = await runner.cmd<Floor>(c);
            res[c].push(f);
            if (c === "one") oneAfter.set(n, f);
          }
          swap = !swap;
          floorEnds.set(n, performance.now());
        }
      } finally {
        await d.stop();
      }
      const r: DaemonResult = {
        label: vlabel,
        sockets: 0,
        namespaces: 0,
        polls: [],
        pairedOne: [],
        inexact: 0,
        userMs: [],
        v8WorkersMs: [],
        bytes: 0,
        gcMaxMs: 0,
        gcMaxKind: "",
        gcInPolls: 0,
        hwmMb: 0,
        idleRssMb: 0,
        overlaps: 0,
      };
      const rss: number[] = [];
      const windows: [number, number][] = [];
      for (let n = WARMUP + 1; n <= WARMUP + polls; n++) {
        const p = d.polls.get(n);
        const s = d.samples.get(n);
        const before = d.samples.get(n - 1);
        if (!p || !s || !before) throw new Error(`poll ${n} not sampled`);
        if (p.sockets < expect || p.namespaces !== names.length) {
          throw new Error(
            `poll ${n} saw ${p.sockets} sockets in ${p.namespaces} namespaces, not ${expect} in ${names.length}: did the load go away?`,
          );
        }
        const cpu = cpuBetween(before, s);
        if (!cpu.exact) r.inexact++;
        r.polls.push({ wallMs: p.ms, cpuMs: cpu.ms });
        const floor = oneAfter.get(n);
        if (floor) r.pairedOne.push(cpu.ms / floor.cpuMs);
        r.userMs.push(s.userMs - before.userMs);
        r.v8WorkersMs.push(s.v8WorkersMs - before.v8WorkersMs);
        rss.push(s.rssKb);
        r.sockets = p.sockets;
        r.namespaces = p.namespaces;
        r.bytes = p.bytes;
        windows.push([p.at - p.ms, p.at]);
        const next = d.polls.get(n + 1);
        const end = floorEnds.get(n - 1);
        if (end !== undefined && end > p.at - p.ms) r.overlaps++;
        if (next && (floorEnds.get(n) ?? 0) > next.at - next.ms) r.overlaps++;
      }
      r.hwmMb = (d.samples.get(WARMUP + polls)?.hwmKb ?? 0) / 1024;
      r.idleRssMb = median(rss) / 1024;
      // The isolate's clock starts after the process (startedAt), by up to ~150 ms of nsenter,
      // unshare and deno's start: a GC counts for a poll when it may have fallen inside it.
      for (const e of gcEvents(d.stdout)) {
        const t = d.startedAt + e.at;
        if (windows.some(([a, b]) => t >= a - 150 && t <= b + 5)) {
          r.gcInPolls++;
          if (e.pause > r.gcMaxMs) {
            r.gcMaxMs = e.pause;
            r.gcMaxKind = e.kind;
          }
        }
      }
      if (r.overlaps) {
        console.error(`bench:e2e: warning: ${r.overlaps} floor rounds ran into a poll`);
      }
      console.error(
        `bench:e2e: ${label}: daemon${vlabel ? ` ${vlabel}` : ""}: CPU ms of each poll ${
          r.polls.map((x) => x.cpuMs.toFixed(1)).join(" ")
        }; over its one-walk floor ${r.pairedOne.map((x) => x.toFixed(2)).join(" ")}`,
      );
      if (r.inexact) {
        console.error(`bench:e2e: warning: ${r.inexact} polls measured in clock ticks`);
      }
      res.daemons.push(r);
    }
    res.replayNs = (await runner.cmd<{ nsPerSocket: number }>("replay")).nsPerSocket;
  } finally {
    await runner.close();
  }
  return res;
}

/** `ss -tinHO` run `runs` times inside the namespace: mean wall and CPU per run. */
async function ssCost(netns: string, runs = 5): Promise<Sample> {
  const script = `i=0; while [ $i -lt ${runs} ]; do ss -tinHO > /dev/null; i=$((i+1)); done; ` +
    "cat /proc/$$/stat";
  const t0 = performance.now();
  const stat = await output("ip", ["netns", "exec", netns, "sh", "-c", script]);
  const wallMs = (performance.now() - t0) / runs;
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 (cutime, cstime) in clock ticks of 10 ms; after ")" field 3 is index 0.
  const ticks = Number(f[16 - 3]) + Number(f[17 - 3]);
  return { wallMs, cpuMs: (ticks * 10) / runs };
}

const SYSCTL = "net.ipv4.tcp_child_ehash_entries";

const single: CaseResult[] = [];
const many: { table: string; r: CaseResult }[] = [];
const conns = Number(values.conns);
if (conns > 0) {
  console.error(`bench:e2e: ${conns} connections…`);
  await using load = await startLoad({ conns, bytes: 100 });
  const r = await measureCase(
    `${conns.toLocaleString("en")} conns`,
    [load.netns],
    2 * conns,
    Number(values.frequency),
    Number(values.polls),
    [["", []], ["`-pipeline`", ["-pipeline"]]],
  );
  r.ss = await ssCost(load.netns);
  single.push(r);
}
const k = Number(values.namespaces);
const per = Number(values.nsConns);
if (k > 0) {
  for (const own of [false, true]) {
    const table = own ? `own (${SYSCTL}=${values.childEhash})` : "host's";
    console.error(`bench:e2e: ${k} namespaces × ${per} connections, ${table} table…`);
    let restore: string | undefined;
    if (own) {
      restore = (await output("sysctl", ["-n", SYSCTL])).trim();
      await output("sysctl", ["-qw", `${SYSCTL}=${values.childEhash}`]);
    }
    let loads;
    try {
      loads = await startManyNamespaces(k, { conns: per, bytes: 100 });
    } finally {
      if (restore !== undefined) await output("sysctl", ["-qw", `${SYSCTL}=${restore}`]);
    }
    await using m = loads;
    const r = await measureCase(
      `${k} ns × ${per} conns`,
      m.names,
      k * 2 * per,
      Number(values.nsFrequency),
      Number(values.nsPolls),
      [["", []]],
    );
    many.push({ table, r });
  }
}

const f0 = (x: number) => x.toFixed(0);
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Polls or dumps: the median wall, the mean CPU (what the CPU is spent on over time). */
const summary = (xs: Sample[]): Sample => ({
  wallMs: median(xs.map((x) => x.wallMs)),
  cpuMs: mean(xs.map((x) => x.cpuMs)),
});
const daemonSample = (d: DaemonResult): Sample => summary(d.polls);
/** The lowest and highest of a daemon's polls' CPU over their own one-walk floor's. */
const spread = (d: DaemonResult) =>
  `${f2(Math.min(...d.pairedOne))}–${f2(Math.max(...d.pairedOne))}`;
const status = (ok: boolean) => (ok ? "reached" : "**not reached**");
const date = new Date().toISOString().slice(0, 10);

const targets = [
  "| target | measured | status |",
  "| --- | --- | --- |",
];
const detail = [
  "| case | sockets | path | wall ms | CPU ms | user ms | V8 workers ms | CPU × one walk | CPU × two walks | wall × two walks |",
  "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
];
const memory = [
  "| case | path | parse + encode ns/socket (replay, with a copy of each datagram) | GCs in polls | longest GC pause in a poll, ms | peak RSS MB | idle RSS (between polls) MB | MB/poll |",
  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
];
let gcMax = 0;
const caseRows = (r: CaseResult, table = "") => {
  const one = summary(r.one);
  const two = summary(r.two);
  const sockets = r.one.at(-1)?.sockets ?? 0;
  const label = table ? `${r.label}, ${table} table` : r.label;
  const row = (path: string, s: Sample, user = "", v8 = "") =>
    detail.push(
      `| ${label} | ${sockets} | ${path} | ${f1(s.wallMs)} | ${f1(s.cpuMs)} | ${user} | ${v8} | ${
        f2(s.cpuMs / one.cpuMs)
      } | ${f2(s.cpuMs / two.cpuMs)} | ${f2(s.wallMs / two.wallMs)} |`,
    );
  row("floor: one walk (compat request)", one);
  row("floor: two walks (v2 requests)", two);
  for (const d of r.daemons) {
    row(
      `daemon${d.label ? ` ${d.label}` : ""}`,
      daemonSample(d),
      f1(mean(d.userMs)),
      f1(mean(d.v8WorkersMs)),
    );
    gcMax = Math.max(gcMax, d.gcMaxMs);
    memory.push(
      `| ${label} | daemon${d.label ? ` ${d.label}` : ""} | ${f0(r.replayNs)} | ${d.gcInPolls} | ${
        f1(d.gcMaxMs)
      }${d.gcMaxKind ? ` (${d.gcMaxKind})` : ""} | ${f0(d.hwmMb)} | ${f0(d.idleRssMb)} | ${
        f1(d.bytes / 1e6)
      } |`,
    );
  }
  if (r.ss) row("`ss -tinHO`", r.ss);
  return { one, two, sockets };
};
for (const r of single) {
  const { one, two, sockets } = caseRows(r);
  const d = daemonSample(r.daemons[0]!);
  const pipe = r.daemons[1];
  targets.push(
    `| CPU of a poll ≤ 1.20× the one-walk dump, ${sockets} sockets in one namespace | ${
      f3(d.cpuMs / one.cpuMs)
    }× (${f1(d.cpuMs)} ms against ${f1(one.cpuMs)}; each poll ${
      spread(r.daemons[0]!)
    }× its own) | ${status(d.cpuMs <= 1.2 * one.cpuMs)} |`,
    `| CPU of a poll ≤ 1.05× the two-walk dump, ${sockets} sockets in one namespace | ${
      f3(d.cpuMs / two.cpuMs)
    }× (${f1(d.cpuMs)} ms against ${f1(two.cpuMs)}) | ${status(d.cpuMs <= 1.05 * two.cpuMs)} |`,
  );
  if (pipe) {
    const p = daemonSample(pipe);
    targets.push(
      `| wall of a \`-pipeline\` poll ≤ 1.10× the two-walk dump | ${f3(p.wallMs / two.wallMs)}× (${
        f1(p.wallMs)
      } ms against ${f1(two.wallMs)}) | ${status(p.wallMs <= 1.1 * two.wallMs)} |`,
    );
  }
  const hwm = Math.max(...r.daemons.map((x) => x.hwmMb));
  targets.push(
    `| peak RSS at ${sockets} sockets ≤ 150 MB | ${f0(r.daemons[0]!.hwmMb)} MB${
      pipe ? `, ${f0(pipe.hwmMb)} MB with \`-pipeline\`` : ""
    } | ${status(hwm <= 150)} |`,
    `| idle RSS (between polls, ${sockets} sockets) | ${f0(r.daemons[0]!.idleRssMb)} MB${
      pipe ? `, ${f0(pipe.idleRssMb)} MB with \`-pipeline\`` : ""
    } | reported |`,
  );
}
const ehash = [
  "| namespaces made with | sockets | one walk: sum ms (CPU) | two walks: sum ms (CPU) | two walks: one namespace, median wall ms | daemon CPU ms | daemon wall ms | daemon CPU × two walks |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const { table, r } of many) {
  const { one, two, sockets } = caseRows(r, table);
  const d = daemonSample(r.daemons[0]!);
  const perNs = median(r.two.flatMap((x) => x.perNs));
  ehash.push(
    `| the ${table} table | ${sockets} | ${f1(one.cpuMs)} | ${f1(two.cpuMs)} | ${f2(perNs)} | ${
      f1(d.cpuMs)
    } | ${f1(d.wallMs)} | ${f2(d.cpuMs / two.cpuMs)} |`,
  );
  if (table === "host's") {
    targets.push(
      `| CPU of a poll ≤ 0.90× the two-walk dumps summed over ${r.label} (the host's table) | ${
        f3(d.cpuMs / two.cpuMs)
      }× (${f1(d.cpuMs)} ms against ${f1(two.cpuMs)}) | ${status(d.cpuMs <= 0.9 * two.cpuMs)} |`,
    );
  }
}
targets.push(
  `| longest GC pause during a poll ≤ 5 ms (every case) | ${f1(gcMax)} ms | ${
    status(gcMax <= 5)
  } |`,
);

const body = [
  await machineLine(),
  `Targets of issue 12, as measured on ${date} by \`deno task bench:e2e\` (the daemon as deployed:`,
  "`-dest null -marshal protobufList`, default decoders, polling only the bench's namespaces; CPU",
  "is the CPU time of the whole process, every thread and GC included, from one sample half-way",
  "between polls to the next (the sum of its threads' `/proc/<pid>/task/*/schedstat`), the mean of",
  `${values.polls} polls (${values.nsPolls} in the namespaces cases) after ${WARMUP_SECONDS} s of warm-up polls (the`,
  "runtime's startup transients: V8's memory reducer collects the startup heap in the first ~35 s);",
  "the floors are",
  "the kernel's dumps of the same namespaces through our FFI socket, receive only (CPU from",
  "`getrusage`), one of each request after every measured poll, in the same run: their mean CPU",
  'too. Wall times are medians; "each poll … its own": the lowest and highest ratio of a poll\'s',
  "CPU to that of the one-walk dump right after it. User ms and V8 workers (their part of the CPU:",
  "concurrent GC, mostly) come from clock ticks (`/proc/<pid>/stat`, 10 ms each); GC pauses from",
  "`--trace-gc`; peak RSS is VmHWM.",
  "",
  ...targets,
  "",
  ...detail,
  "",
  ...memory,
  ...(many.length
    ? [
      "",
      `The namespaces case twice: namespaces made with the host's TCP hash table, and made while \`${SYSCTL}\``,
      `was ${values.childEhash} (restored right after).`,
      "",
      ...ehash,
    ]
    : []),
].join("\n");
console.log(body);
if (!values["no-readme"]) await rewriteReadmeSection("e2e", body, "bench:e2e");
