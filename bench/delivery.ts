/**
 * Delivery benchmark (`deno task bench:delivery`): the daemon as users run it — a child process
 * `deno run <the xtcp2 task's flags> src/cmd/xtcp2.ts …`, the flags read from `deno.json` — at
 * `--conns` established loopback connections (2 sockets each) in one namespace, polling every
 * `--frequency` seconds with `-marshal protobufList`, against each destination in turn:
 *
 * - `null` (the baseline), `nats:` (a live nats-server), `valkey:` (PUBLISH) and
 *   `valkey-stream:` (XADD) (a live redis-server), `--rounds` times in alternation, each run
 *   `--warmup` polls then `--polls` measured ones: CPU per poll (the CPU time of the whole
 *   process, every thread and GC included, from each thread's /proc schedstat, sampled half-way
 *   between polls so that each sample covers one poll and its delivery), as a ratio to null; the
 *   poll's wall
 *   time (its log line); user CPU, and the CPU of V8's worker threads (concurrent GC, mostly);
 *   bytes and flushes per poll; peak RSS (VmHWM) and RSS between polls;
 *   and the closing account line (what the server acknowledged);
 * - `nats:` with its server stopped for `--outagePolls` polls after `--warmup` polls with it up:
 *   the delivery queue fills; peak RSS with a full queue, for each `--outageQueueBytes` given
 *   to `--destQueueBytes` (0: the default, 32 MiB);
 * - `null` at `--smallConns` connections: bytes per poll of a typical node, so that the README can
 *   say how long the default queue holds.
 *
 * The servers run inside the load's namespace on ports above its ephemeral range, and so does the
 * daemon, in a pid and mount namespace of its own (`unshare`) where /run/netns and
 * /run/docker/netns are empty: it polls exactly one namespace, whatever else the host runs
 * (every other namespace would cost it a whole dump of the host's TCP hash table per poll).
 * Prints the tables and rewrites the README's `delivery` section.
 *
 *   deno task bench:delivery [--conns 50000] [--smallConns 2500] [--rounds 4] [--polls 5]
 *                            [--warmup 2] [--frequency 3] [--outagePolls 4]
 *                            [--outageQueueBytes 0,25165824,16777216,41943040] [--no-readme]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startLoad } from "../tests/support/loadgen/loadgen.ts";
import { benchArgs, CLK_TCK, cpuBetween, DaemonRun, median } from "./daemon_run.ts";
import { machineLine, rewriteReadmeSection } from "./machine.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    conns: { type: "string", default: "50000" },
    smallConns: { type: "string", default: "2500" },
    rounds: { type: "string", default: "4" },
    polls: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    frequency: { type: "string", default: "3" },
    outagePolls: { type: "string", default: "4" },
    outageQueueBytes: { type: "string", default: "0,25165824,16777216,41943040" },
    "no-readme": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "usage: deno task bench:delivery [--conns 50000] [--smallConns 2500] [--rounds 4] [--polls 5] [--warmup 2] [--frequency 3] [--outagePolls 4] [--outageQueueBytes 0,25165824,16777216,41943040] [--no-readme]",
  );
  Deno.exit(0);
}
const CONNS = Number(values.conns);
const SMALL_CONNS = Number(values.smallConns);
const ROUNDS = Number(values.rounds);
const POLLS = Number(values.polls);
const WARMUP = Number(values.warmup);
const FREQUENCY_MS = Number(values.frequency) * 1000;
const OUTAGE_POLLS = Number(values.outagePolls);
const OUTAGE_QUEUES = values.outageQueueBytes.split(",").map(Number);
const DEFAULT_QUEUE_BYTES = 32 * 1024 * 1024;
/** The default cadence, for how long the queue holds. */
const DEFAULT_FREQUENCY_S = 10;

// Ports above the load's ephemeral range (1024–65000) in a namespace of our own: nobody else's.
const NATS_PORT = 65101;
const REDIS_PORT = 65102;
const GRPC_PORT = 65103;
const PROM_PORT = 65104;

/** A server process in the load's namespace, ready once `ready` shows in its output. */
async function startServer(
  netns: string,
  cmd: string,
  args: string[],
  ready: RegExp,
): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", netns, cmd, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  for (const s of [child.stdout, child.stderr]) {
    (async () => {
      for await (const c of s.pipeThrough(new TextDecoderStream())) text += c;
    })().catch(() => {});
  }
  const deadline = Date.now() + 10_000;
  while (!ready.test(text)) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${cmd} did not start:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

async function stopProcess(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* exited */ }
  await child.status;
}

const startNats = (netns: string) =>
  startServer(
    netns,
    "/usr/sbin/nats-server",
    ["-a", "127.0.0.1", "-p", String(NATS_PORT)],
    /Server is ready/,
  );
const startRedis = (netns: string) =>
  startServer(
    netns,
    "/usr/bin/redis-server",
    [
      "--port",
      String(REDIS_PORT),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ],
    /Ready to accept connections/,
  );

/** The mean (for user CPU, whose samples are whole clock ticks, it averages the ticks out). */
function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** What the runs of one destination measured. */
interface Result {
  label: string;
  /** CPU ms of each measured poll (one sample to the next). */
  cpuMs: number[];
  userMs: number[];
  v8WorkersMs: number[];
  wallMs: number[];
  bytes: number[];
  flushes: number[];
  sockets: number[];
  namespaces: number[];
  rssKb: number[];
  hwmKb: number;
  handedOver: number;
  acked: number;
  /** Rows dropped because the queue was full (not those dropped at shutdown). */
  droppedFull: number;
}

function emptyResult(label: string): Result {
  return {
    label,
    cpuMs: [],
    userMs: [],
    v8WorkersMs: [],
    wallMs: [],
    bytes: [],
    flushes: [],
    sockets: [],
    namespaces: [],
    rssKb: [],
    hwmKb: 0,
    handedOver: 0,
    acked: 0,
    droppedFull: 0,
  };
}

/**
 * Polls `from`..`to` of a run into `r` (CPU from the sample before each). Each must have seen
 * the load's `conns` connections (2 sockets each) in one namespace.
 */
function collect(r: Result, d: DaemonRun, from: number, to: number, conns: number): void {
  for (let n = from; n <= to; n++) {
    const p = d.polls.get(n);
    const s = d.samples.get(n);
    const before = d.samples.get(n - 1);
    if (!p || !s || !before) throw new Error(`poll ${n} not sampled`);
    if (p.namespaces !== 1 || p.sockets < 2 * conns) {
      throw new Error(
        `poll ${n} saw ${p.sockets} sockets in ${p.namespaces} namespaces, not ${
          2 * conns
        } in 1: did the load go away?`,
      );
    }
    r.cpuMs.push(cpuBetween(before, s).ms);
    r.userMs.push(s.userMs - before.userMs);
    r.v8WorkersMs.push(s.v8WorkersMs - before.v8WorkersMs);
    r.wallMs.push(p.ms);
    r.bytes.push(p.bytes);
    r.flushes.push(p.flushes);
    r.sockets.push(p.sockets);
    r.namespaces.push(p.namespaces);
    r.rssKb.push(s.rssKb);
  }
  r.hwmKb = Math.max(r.hwmKb, d.samples.get(to)?.hwmKb ?? 0);
}

/** The closing `delivery to …` line, added to `r`. */
function account(r: Result, log: string): void {
  const m = /delivery to \S+: (\d+) rows handed over, (\d+) acknowledged, \d+ dropped(.*)/.exec(
    log,
  );
  if (!m) throw new Error(`no delivery account in the log:\n${log}`);
  r.handedOver += Number(m[1]);
  r.acked += Number(m[2]);
  r.droppedFull += Number(/queue_full (\d+)/.exec(m[3] ?? "")?.[1] ?? 0);
}

const daemonArgs = (dest: string, extra: string[] = []) =>
  benchArgs({
    dest,
    frequencyMs: FREQUENCY_MS,
    grpcPort: GRPC_PORT,
    promPort: PROM_PORT,
    extra: ["-topic", "xtcp-bench", ...extra],
  });

const DESTS: [label: string, dest: string][] = [
  ["null", "null"],
  ["nats", `nats:127.0.0.1:${NATS_PORT}`],
  ["valkey (PUBLISH)", `valkey:127.0.0.1:${REDIS_PORT}`],
  ["valkey-stream (XADD)", `valkey-stream:127.0.0.1:${REDIS_PORT}`],
];

const results = new Map(DESTS.map(([label]) => [label, emptyResult(label)]));
const outages: (Result & { queueBytes: number })[] = [];
const small = emptyResult("null");
let outageStoppedMs = 0;

{
  console.error(`bench:delivery: ${CONNS} connections…`);
  await using load = await startLoad({ conns: CONNS, bytes: 100 });
  let nats = await startNats(load.netns);
  const redis = await startRedis(load.netns);
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [label, dest] of DESTS) {
        console.error(`bench:delivery: round ${round}/${ROUNDS}: ${label}`);
        const d = await DaemonRun.start([load.netns], daemonArgs(dest), {
          frequencyMs: FREQUENCY_MS,
        });
        await d.waitPoll(WARMUP + POLLS);
        const log = await d.stop();
        const r = results.get(label)!;
        collect(r, d, WARMUP + 1, WARMUP + POLLS, CONNS);
        if (dest !== "null") account(r, log);
      }
    }
    for (const q of OUTAGE_POLLS > 0 ? OUTAGE_QUEUES : []) {
      const queueBytes = q || DEFAULT_QUEUE_BYTES;
      console.error(`bench:delivery: nats stopped for ${OUTAGE_POLLS} polls, queue ${queueBytes}`);
      const r = { ...emptyResult("nats, server stopped"), queueBytes };
      const d = await DaemonRun.start(
        [load.netns],
        daemonArgs(`nats:127.0.0.1:${NATS_PORT}`, q ? ["-destQueueBytes", String(q)] : []),
        { frequencyMs: FREQUENCY_MS },
      );
      await d.waitPoll(WARMUP);
      const t0 = performance.now();
      await stopProcess(nats);
      await d.waitPoll(WARMUP + OUTAGE_POLLS);
      outageStoppedMs = performance.now() - t0;
      const log = await d.stop();
      collect(r, d, WARMUP + 1, WARMUP + OUTAGE_POLLS, CONNS);
      account(r, log);
      if (!/delivery queue full: dropping envelopes/.test(log)) {
        console.error(`bench:delivery: warning: the queue never filled:\n${log}`);
      }
      outages.push(r);
      nats = await startNats(load.netns);
    }
  } finally {
    await stopProcess(nats);
    await stopProcess(redis);
  }
}
if (SMALL_CONNS > 0) {
  console.error(`bench:delivery: ${SMALL_CONNS} connections, null…`);
  await using load = await startLoad({ conns: SMALL_CONNS, bytes: 100 });
  const d = await DaemonRun.start([load.netns], daemonArgs("null"), {
    frequencyMs: FREQUENCY_MS,
  });
  await d.waitPoll(WARMUP + POLLS);
  await d.stop();
  collect(small, d, WARMUP + 1, WARMUP + POLLS, SMALL_CONNS);
}

const MB = 1e6;
const f0 = (x: number) => x.toFixed(0);
const f1 = (x: number) => x.toFixed(1);
const mb = (kb: number) => f0((kb * 1024) / MB);
const nullCpu = mean(results.get("null")!.cpuMs);
const table = [
  "| destination | sockets | polls | CPU ms/poll | CPU × null | user ms | V8 workers ms | wall ms/poll | MB/poll | flushes/poll | rows acknowledged | peak RSS MB | RSS between polls MB |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
];
for (const r of results.values()) {
  const cpu = mean(r.cpuMs);
  table.push(
    `| ${r.label} | ${f0(median(r.sockets))} | ${r.cpuMs.length} | ${f1(cpu)} | ${
      (cpu / nullCpu).toFixed(2)
    } | ${f1(mean(r.userMs))} | ${f1(mean(r.v8WorkersMs))} | ${f1(median(r.wallMs))} | ${
      f1(median(r.bytes) / MB)
    } | ${f0(median(r.flushes))} | ${
      r.label === "null" ? "n/a" : `${r.acked} of ${r.handedOver}`
    } | ${mb(r.hwmKb)} | ${mb(median(r.rssKb))} |`,
  );
}
const memory = [
  "| case | sockets | queue MiB | rows dropped (queue full) | peak RSS MB | RSS between polls MB |",
  "| --- | ---: | ---: | ---: | ---: | ---: |",
];
const nullRow = results.get("null")!;
const memRow = (label: string, r: Result, queue: string, dropped: string) =>
  `| ${label} | ${f0(median(r.sockets))} | ${queue} | ${dropped} | ${mb(r.hwmKb)} | ${
    mb(median(r.rssKb))
  } |`;
memory.push(memRow("null", nullRow, "n/a", "n/a"));
for (const label of ["nats", "valkey (PUBLISH)"]) {
  const r = results.get(label)!;
  memory.push(
    memRow(`${label}, server up`, r, f0(DEFAULT_QUEUE_BYTES / 2 ** 20), `${r.droppedFull}`),
  );
}
for (const o of outages) {
  memory.push(
    memRow(
      `nats, server stopped ${OUTAGE_POLLS} polls`,
      o,
      f0(o.queueBytes / 2 ** 20),
      `${o.droppedFull}`,
    ),
  );
}
if (small.cpuMs.length) memory.push(memRow("null", small, "n/a", "n/a"));
const holds = [
  `| sockets | bytes/poll | polls the default queue (32 MiB) holds | outage it covers at ${DEFAULT_FREQUENCY_S} s polls |`,
  "| ---: | ---: | ---: | ---: |",
];
for (const r of [small, nullRow]) {
  if (!r.bytes.length) continue;
  const b = median(r.bytes);
  const polls = DEFAULT_QUEUE_BYTES / b;
  const s = Math.floor(polls) * DEFAULT_FREQUENCY_S;
  holds.push(
    `| ${f0(median(r.sockets))} | ${f0(b)} | ${polls.toFixed(2)} | ${
      s >= 60 ? `${f1(s / 60)} min` : `${s} s`
    } |`,
  );
}
const body = [
  await machineLine(),
  `${CONNS.toLocaleString("en")} loopback connections in one namespace, polls every ${
    FREQUENCY_MS / 1000
  } s, \`-marshal protobufList\`; ${ROUNDS} round(s) of each destination in turn, each ${WARMUP} warm-up`,
  `then ${POLLS} measured polls. CPU: the CPU time of the daemon process (every thread, GC`,
  "included: the sum of its threads' /proc schedstat times) from one sample half-way between",
  "polls to the next, so each covers a poll and its delivery; the mean over the measured polls;",
  `user is its user part, from whole ${
    1000 / CLK_TCK
  } ms clock ticks (the mean averages them out; the kernel's dump is sys time),`,
  "V8 workers the part of V8's worker threads (concurrent GC, mostly). Wall: the poll's own line",
  "(dump, encode, enqueue). The other columns are medians.",
  `The outage rows stop nats-server after ${WARMUP} polls for ${
    f1(outageStoppedMs / 1000)
  } s (${OUTAGE_POLLS} polls). Rows acknowledged and dropped: the daemon's closing account line.`,
  "",
  ...table,
  "",
  ...memory,
  "",
  ...holds,
].join("\n");
console.log(body);
if (!values["no-readme"]) await rewriteReadmeSection("delivery", body, "bench:delivery");
