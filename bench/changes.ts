/**
 * Change-only output and socket owners (`deno task bench:changes`): the daemon's Poller, in this
 * process, over exactly two namespaces: `--sockets` idle loopback sockets (tests/support/loadgen,
 * each connection exchanging 100 bytes once) and `--busy` of them in a second namespace
 * (tests/support/idle_conns.py) that carry 16 bytes each way before every poll — mostly idle, as
 * most sockets of a server are. Destination null, protobufList. Per poll, for the full output
 * and `--changesOnly`, each with and without `--socketOwners`: CPU (user + sys of this process,
 * the kernel's dump included) and wall time, rows and bytes written. And one full scan of
 * /proc/*\/fd (what `--socketOwners` pays when a poll meets an unknown inode): ms, fds, µs per fd.
 *
 *   deno task bench:changes [--sockets 2000] [--busy 0.01] [--polls 10] [--warmup 3] [--no-readme]
 *
 * Prints the table and rewrites the README's `changes` section (unless `--no-readme`).
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { scanSocketFds } from "../ffi/proc_fd.ts";
import { pollSettings } from "../src/config/derive.ts";
import { defaultConfig } from "../src/config/load.ts";
import { NullDest } from "../src/dest/null.ts";
import { InPlaceDelivery } from "../src/dest/queue.ts";
import { marshaller } from "../src/format/marshal.ts";
import { Poller } from "../src/poll/poller.ts";
import { msToDuration } from "../src/util/duration.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { idleConns } from "../tests/support/idle_conns.ts";
import { startLoad } from "../tests/support/loadgen/loadgen.ts";
import { registryOver } from "../tests/support/registry.ts";
import { machineLine, rewriteReadmeSection } from "./machine.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sockets: { type: "string", default: "2000" },
    busy: { type: "string", default: "0.01" },
    polls: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    "no-readme": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "usage: deno task bench:changes [--sockets 2000] [--busy 0.01] [--polls 10] [--warmup 3] [--no-readme]",
  );
  Deno.exit(0);
}
const SOCKETS = Number(values.sockets);
const BUSY_CONNS = Math.max(1, Math.round((SOCKETS * Number(values.busy)) / 2));
const POLLS = Number(values.polls);
const WARMUP = Number(values.warmup);

/** One case's medians per poll. */
interface Row {
  label: string;
  cpuMs: number;
  wallMs: number;
  rows: number;
  bytes: number;
  sockets: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

await using load = await startLoad({ conns: Math.round(SOCKETS / 2), bytes: 100 });
await using busy = await idleConns(BUSY_CONNS);

const counters = new Counters();
const log = new Logger(0);
using registry = registryOver([load.netns, busy.netns], log, counters);

const cfg = defaultConfig();
cfg.marshalTo = "protobufList";
cfg.dest = "null";
cfg.pollFrequency = msToDuration(3_600_000);
cfg.pollTimeout = msToDuration(3_000_000);

/** One case: its poller and what each measured poll took. */
interface Case {
  label: string;
  poller: Poller;
  cpu: number[];
  wall: number[];
  rows: number[];
  bytes: number[];
  sockets: number[];
}

function newCase(label: string, flags: { changesOnly?: boolean; socketOwners?: boolean }): Case {
  return {
    label,
    poller: new Poller({
      settings: pollSettings({ ...cfg, ...flags }, { hostname: "bench-host", version: "bench" }),
      registry,
      delivery: new InPlaceDelivery(new NullDest(), "message", counters, log),
      marshaller: marshaller(cfg.marshalTo),
      log,
      counters,
    }),
    cpu: [],
    wall: [],
    rows: [],
    bytes: [],
    sockets: [],
  };
}

/** `n` polls of `c` (each after the busy connections spoke); kept unless `warmup`. */
async function polls(c: Case, n: number, warmup: boolean): Promise<void> {
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < BUSY_CONNS; k++) await busy.send(k);
    const rows0 = counters.get("Poller", "envelopeRows");
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const s = await c.poller.pollOnce();
    const t = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    if (warmup) continue;
    c.cpu.push((cpu.user + cpu.system) / 1000);
    c.wall.push(t);
    c.rows.push(counters.get("Poller", "envelopeRows") - rows0);
    c.bytes.push(s.bytes);
    c.sockets.push(s.sockets);
  }
}

const cases = [
  newCase("full", {}),
  newCase("--changesOnly", { changesOnly: true }),
  newCase("full --socketOwners", { socketOwners: true }),
  newCase("--changesOnly --socketOwners", { changesOnly: true, socketOwners: true }),
];
for (const c of cases) await polls(c, WARMUP, true);
// Rounds of a few polls of each case in turn, so drift (other load, caches) hits them alike.
const ROUND = Math.min(POLLS, 3);
for (let done = 0; done < POLLS; done += ROUND) {
  for (const c of cases) await polls(c, Math.min(ROUND, POLLS - done), false);
}
for (const c of cases) c.poller[Symbol.dispose]();
const results: Row[] = cases.map((c) => ({
  label: c.label,
  cpuMs: median(c.cpu),
  wallMs: median(c.wall),
  rows: median(c.rows),
  bytes: median(c.bytes),
  sockets: median(c.sockets),
}));
const t0 = performance.now();
const scan = scanSocketFds(() => {});
const scanMs = performance.now() - t0;

const base = results[0]!;
const lines = [
  `${await machineLine()} ${SOCKETS} idle sockets and ${
    BUSY_CONNS * 2
  } busy ones (16 bytes each way per connection before each poll), medians of ${POLLS} polls of each case (in rounds of ${ROUND}, the cases in turn) after ${WARMUP}, destination null, protobufList; CPU is user + sys of the process (the kernel's dump included).`,
  "",
  "| output | sockets dumped | rows written | bytes | CPU ms | vs full | wall ms |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...results.map((r) =>
    `| ${r.label} | ${Math.round(r.sockets)} | ${Math.round(r.rows)} | ${Math.round(r.bytes)} | ${
      r.cpuMs.toFixed(1)
    } | ${(r.cpuMs / base.cpuMs).toFixed(2)} | ${r.wallMs.toFixed(1)} |`
  ),
  "",
  `A whole walk of /proc/*/fd (what \`--socketOwners\` pays, spread over polls by \`--socketOwnersBudget\`, when polls meet inodes it does not know): ${
    scanMs.toFixed(0)
  } ms for ${scan.fds} fds of ${scan.processes} processes (${
    ((scanMs * 1000) / Math.max(1, scan.fds)).toFixed(1)
  } µs per fd).`,
];
const body = lines.join("\n");
console.log(body);
if (!values["no-readme"]) await rewriteReadmeSection("changes", body, "bench:changes");
