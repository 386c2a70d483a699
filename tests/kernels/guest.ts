/**
 * The kernel suite's checks, run inside the VM (by init.sh, as root, in the guest's initial
 * namespace) against the guest's kernel:
 *
 *   deno run --no-check --allow-all tests/kernels/guest.ts OUTDIR
 *
 * OUTDIR/plan.json (written by the host) says which checks to run; each check's outcome goes to
 * OUTDIR/results.json as soon as it is known (a crash or a timeout keeps the earlier ones) and to
 * the console as an `XK-CHECK` line. Captures go to OUTDIR as well. The host asserts.
 *
 * The project is driven through its stable surfaces only: `mod.ts`, the daemon's command line,
 * the load generator and the test support that compares records with `ss`.
 *
 * A new check is one more entry of {@link CHECKS}; its `modes` say on which boots it runs.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startLoad } from "../support/loadgen/loadgen.ts";
import {
  collectOnce,
  Dumper,
  type DumpSink,
  idiagExt,
  NetlinkError,
  openDiagSocket,
  parseDeserializers,
  type SocketView,
} from "../../mod.ts";
import { INET_DIAG_INFO } from "../../src/netlink/constants.ts";
import { filterBytecode } from "../../src/netlink/filter.ts";
import { compareWithSs, type Rec, recKey, viewToRec } from "../support/records.ts";
import { xtcp2Argv } from "../support/run.ts";
import { parseSs, ssAddrKey } from "../support/ss_text.ts";

/** Which boot this is. */
export type Mode = "autoload" | "nomodprobe";

/** What the host asks for (OUTDIR/plan.json). */
export interface Plan {
  mode: Mode;
  /** Established connections of the named namespace (2 sockets each). */
  conns: number;
  /** Established connections of the `unshare -n` namespace. */
  unshareConns: number;
  /** Debian package and version of the kernel, recorded in the capture's metadata. */
  kernelPackage: string;
}

/** One check's outcome. */
export interface CheckResult {
  name: string;
  ok: boolean;
  ms: number;
  /** What the check measured (counts, lengths, the message seen, …). */
  detail: Record<string, unknown>;
  /** Why it failed. */
  error?: string;
}

/** OUTDIR/results.json. */
export interface GuestResults {
  release: string;
  mode: Mode;
  checks: CheckResult[];
  /** Whether every planned check ran (false: the guest died or was stopped midway). */
  finished: boolean;
}

/** State the checks share within one boot. */
interface Ctx {
  plan: Plan;
  out: string;
  tmp: string;
  /** The named namespace with the load, once the live check made it. */
  load?: Awaited<ReturnType<typeof startLoad>>;
  /** Things to stop at the end. */
  cleanup: (() => Promise<void>)[];
}

interface Check {
  name: string;
  modes: readonly Mode[];
  run(ctx: Ctx): Promise<Record<string, unknown>>;
}

const DIAG = ["inet_diag", "tcp_diag"];

function loadedModules(): Set<string> {
  const names = Deno.readTextFileSync("/proc/modules").split("\n").map((l) => l.split(" ")[0]);
  return new Set(names.filter((n) => n !== ""));
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

async function cmd(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.ok(out.success, `${argv.join(" ")} failed (${out.code}): ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

/** Runs the daemon in this namespace to its end; returns its status and output. */
async function daemon(args: string[]) {
  const argv = xtcp2Argv(["-pollJitterPct", "0", ...args]);
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Every socket of a collection, and the length of its tcp_info (-1: none). */
class RecSink implements DumpSink {
  recs: Rec[] = [];
  infoLens: number[] = [];
  private mark = 0;
  onSocket(v: SocketView): void {
    this.recs.push(viewToRec(v));
    this.infoLens.push(v.attrOff[INET_DIAG_INFO] >= 0 ? v.attrLen[INET_DIAG_INFO] : -1);
  }
  checkpoint(): void {
    this.mark = this.recs.length;
  }
  rollback(): void {
    this.recs.length = this.mark;
    this.infoLens.length = this.mark;
  }
}

/** The hint's two instructions, as a user reads them. */
function assertHint(message: string): void {
  assert.match(message, /ENOENT \(errno 2\)/, message);
  assert.ok(message.includes("`modprobe inet_diag tcp_diag`"), message);
  assert.ok(message.includes("/etc/modules-load.d/"), message);
}

/** A process holding `conns` loopback connections in a namespace of its own (`unshare -n`). */
async function holdInOwnNamespace(
  ctx: Ctx,
  conns: number,
): Promise<{ pid: number; inode: number }> {
  const worker = new URL("../support/loadgen/loadgen_worker.ts", import.meta.url).pathname;
  // busybox unshare and sh's exec keep one process: the child's pid is the holder's.
  const holder = new Deno.Command("unshare", {
    args: [
      "-n",
      "sh",
      "-c",
      `ip link set lo up && exec "$0" run --quiet --allow-net "$1" --conns ${conns} ` +
      "--v6 0.5 --bytes 100 --basePort 21000 --listeners 1",
      Deno.execPath(),
      worker,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = holder.stdin.getWriter();
  const stderr = new Response(holder.stderr).text();
  ctx.cleanup.push(async () => {
    await stdin.close().catch(() => {});
    await holder.status;
    await stderr;
  });
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!/ready \d+ \d+/.test(said)) {
    const r = await reader.read();
    if (r.done) throw new Error(`the unshare -n holder ended: ${await stderr}`);
    said += r.value;
  }
  await reader.cancel();
  const inode = Deno.statSync(`/proc/${holder.pid}/ns/net`).ino;
  const self = Deno.statSync("/proc/self/ns/net").ino;
  assert.ok(inode !== null && inode !== self, "the holder is in a namespace of its own");
  return { pid: holder.pid, inode };
}

const CHECKS: readonly Check[] = [
  {
    name: "without modprobe, inet_diag and tcp_diag are not loaded",
    modes: ["nomodprobe"],
    run() {
      assert.ok(!exists("/sbin/modprobe"), "/sbin/modprobe exists");
      const m = loadedModules();
      for (const d of DIAG) assert.ok(!m.has(d), `${d} is loaded`);
      return Promise.resolve({ modules: [...m].sort() });
    },
  },
  {
    name: "library: collectOnce throws a NetlinkError that names the missing modules",
    modes: ["nomodprobe"],
    run() {
      const mask = parseDeserializers("all");
      let caught: unknown;
      try {
        collectOnce({ mask, ext: idiagExt(mask) }, new RecSink());
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof NetlinkError, `expected a NetlinkError, got ${String(caught)}`);
      assert.equal(caught.errno, 2);
      assert.equal(caught.code, "ENOENT");
      assertHint(caught.message);
      return Promise.resolve({ message: caught.message });
    },
  },
  {
    name: "daemon: the failed poll's log line names the missing modules",
    modes: ["nomodprobe"],
    async run(ctx) {
      const dir = `${ctx.tmp}/enoent`;
      Deno.mkdirSync(dir);
      const r = await daemon([
        "-maxLoops",
        "1",
        "-dest",
        "null",
        "-writeFiles",
        "10",
        "-capturePath",
        `${dir}/`,
      ]);
      const line = r.stderr.split("\n").find((l) => /dump of namespace default/i.test(l));
      assert.ok(line, `no failed-dump line in: ${r.stderr}`);
      assert.ok(line.includes("failed: Kernel answered the dump with NLMSG_ERROR"), line);
      assertHint(line);
      assert.equal(r.code, 1, "every dump of its only poll failed: exit status 1");
      assert.match(r.stderr, /Every dump of the last poll failed/);
      const pcap = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".pcap"));
      assert.ok(pcap, "the daemon wrote no capture");
      Deno.copyFileSync(`${dir}/${pcap.name}`, `${ctx.out}/enoent.pcap`);
      return { code: r.code, line, capture: "enoent.pcap" };
    },
  },
  {
    name: "the kernel could not load the modules by itself",
    modes: ["nomodprobe"],
    run() {
      const m = loadedModules();
      for (const d of DIAG) assert.ok(!m.has(d), `${d} got loaded`);
      return Promise.resolve({});
    },
  },
  {
    name: "with modprobe, inet_diag and tcp_diag are not loaded before the first dump",
    modes: ["autoload"],
    run() {
      assert.ok(exists("/sbin/modprobe"), "no /sbin/modprobe");
      const m = loadedModules();
      for (const d of DIAG) assert.ok(!m.has(d), `${d} is already loaded`);
      return Promise.resolve({ modules: [...m].sort() });
    },
  },
  {
    name: "live: the collection of a fresh namespace matches ss exactly",
    modes: ["autoload"],
    async run(ctx) {
      const t0 = performance.now();
      const load = await startLoad({ conns: ctx.plan.conns, ipv6Fraction: 0.5, bytes: 1000 });
      ctx.load = load;
      ctx.cleanup.push(() => load.close());
      const loadMs = performance.now() - t0;
      const mask = parseDeserializers("all");
      const sink = new RecSink();
      const t1 = performance.now();
      const n = collectOnce({ nsPath: load.nsPath, mask, ext: idiagExt(mask) }, sink);
      const text = await cmd(["ip", "netns", "exec", load.netns, "ss", "-tinmeaH"]);
      const elapsed = performance.now() - t1;
      const theirs = parseSs(text);
      assert.equal(n, sink.recs.length);
      assert.ok(n >= 2 * ctx.plan.conns + load.listeners, `only ${n} sockets`);
      const fam = { v4: 0, v6: 0 };
      let established = 0;
      for (const r of sink.recs) {
        r.get("inet_diag_msg_family") === 10 ? fam.v6++ : fam.v4++;
        if (r.get("inet_diag_msg_state") === 1) established++;
      }
      const fair = 0.4 * 2 * ctx.plan.conns;
      assert.ok(fam.v4 >= fair && fam.v6 >= fair, `families: ${JSON.stringify(fam)}`);
      const ours = new Map(sink.recs.map((r) => [recKey(r), r]));
      assert.equal(ours.size, sink.recs.length, "socket keys are unique");
      const ssKeys = new Set(theirs.map(ssAddrKey));
      assert.deepEqual([...ours.keys()].filter((k) => !ssKeys.has(k)), [], "only we saw");
      assert.deepEqual([...ssKeys].filter((k) => !ours.has(k)), [], "only ss saw");
      let values = 0;
      for (const s of theirs) {
        values += compareWithSs(ours.get(ssAddrKey(s))!, s, `live ${ssAddrKey(s)}`, {
          lastTolMs: Math.ceil(elapsed) + 50,
        });
      }
      assert.ok(values > theirs.length * 20, `${values} values compared`);
      const lens = new Set(sink.infoLens);
      assert.equal(lens.size, 1, `tcp_info lengths: ${[...lens]}`);
      const [tcpInfoLen] = lens;
      assert.ok(tcpInfoLen > 0, "every socket carries tcp_info");
      return {
        sockets: n,
        established,
        v4: fam.v4,
        v6: fam.v6,
        values,
        tcpInfoLen,
        loadMs: Math.round(loadMs),
        collectAndSsMs: Math.round(elapsed),
      };
    },
  },
  {
    name: "the kernel loaded inet_diag and tcp_diag on the first dump",
    modes: ["autoload"],
    run() {
      const m = loadedModules();
      for (const d of DIAG) assert.ok(m.has(d), `${d} is not loaded`);
      return Promise.resolve({ modules: [...m].sort() });
    },
  },
  {
    name: "daemon: one poll over a named and an unshare -n namespace, captured with ss",
    modes: ["autoload"],
    async run(ctx) {
      const load = ctx.load;
      assert.ok(load, "needs the live check's namespace");
      const holder = await holdInOwnNamespace(ctx, ctx.plan.unshareConns);
      const unshared = `netns:[${holder.inode}]`;
      const dir = `${ctx.tmp}/capture`;
      Deno.mkdirSync(dir);
      const file = `${ctx.tmp}/poll.jsonl`;
      // In the guest's initial namespace, the daemon sees three: its own ("default", holding its
      // gRPC and HTTP listeners), the named one and the unshare -n one. It keeps running after
      // its first poll so that ss, in each namespace, sees the same sockets as the poll.
      const argv = xtcp2Argv([
        "-maxLoops",
        "2",
        "-frequency",
        "10m",
        "-pollJitterPct",
        "0",
        "-dest",
        `file:${file}`,
        "-marshal",
        "jsonl",
        "-deserializers",
        "all",
        "-writeFiles",
        "1000",
        "-capturePath",
        `${dir}/`,
      ]);
      const child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let stderr = "";
      let polled = -1;
      const ss: Record<string, string> = {};
      try {
        while (polled < 0) {
          const r = await reader.read();
          if (r.done) throw new Error(`the daemon ended before its first poll: ${stderr}`);
          stderr += r.value;
          // The poll began its reported duration before its line was printed.
          const m = /poll 1: .*, ([\d.]+) ms/.exec(stderr);
          if (m) polled = performance.now() - Number(m[1]);
        }
        ss.default = await cmd(["ss", "-tinmeaH"]);
        ss[load.netns] = await cmd(["ip", "netns", "exec", load.netns, "ss", "-tinmeaH"]);
        ss[unshared] = await cmd(["nsenter", "-t", String(holder.pid), "-n", "ss", "-tinmeaH"]);
      } finally {
        child.kill("SIGTERM");
      }
      const between = performance.now() - polled;
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        stderr += r.value;
      }
      assert.equal((await child.status).code, 0, stderr);

      const expected = Object.fromEntries(
        Object.entries(ss).map(([ns, text]) => [ns, parseSs(text).length]),
      );
      assert.equal(expected.default, 2, `the daemon's own listeners: ${ss.default}`);
      assert.equal(expected[unshared], 2 * ctx.plan.unshareConns + 2);
      const lines = Deno.readTextFileSync(file).trim().split("\n").map((l) => JSON.parse(l));
      const got: Record<string, number> = {};
      const inodes: Record<string, Set<string>> = {};
      for (const o of lines) {
        got[o.netns] = (got[o.netns] ?? 0) + 1;
        (inodes[o.netns] ??= new Set()).add(String(o.netns_inode));
      }
      assert.deepEqual(got, expected, stderr);
      assert.deepEqual([...inodes[unshared]], [String(holder.inode)], "netns_inode");
      const summary = /poll 1: (\d+) namespaces, (\d+) sockets/.exec(stderr);
      assert.ok(summary, stderr);
      assert.equal(Number(summary[1]), 3, "namespaces polled");
      assert.equal(Number(summary[2]), lines.length, "sockets in the summary line");

      const pcap = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".pcap"));
      assert.ok(pcap, "the daemon wrote no capture");
      Deno.copyFileSync(`${dir}/${pcap.name}`, `${ctx.out}/capture.pcap`);
      Deno.writeTextFileSync(`${ctx.out}/capture.ss`, Object.values(ss).join(""));
      const meta = {
        kernel: Deno.osRelease(),
        debianPackage: ctx.plan.kernelPackage,
        date: new Date().toISOString(),
        conns: ctx.plan.conns,
        namespaces: expected,
        command: "in QEMU (tests/kernels/guest.ts): xtcp2 -maxLoops 2 -frequency 10m " +
          "-deserializers all -writeFiles 1000 over three namespaces; after its first poll, " +
          "ss -tinmeaH in each, then SIGTERM",
        lastTolMs: Math.ceil(between) + 1000,
      };
      Deno.writeTextFileSync(`${ctx.out}/capture.json`, JSON.stringify(meta, null, 2) + "\n");
      return { counts: got, line: summary[0], msBetweenReads: Math.round(between) };
    },
  },
  {
    name:
      "one walk: the compat request (TCPDIAG_GETSOCK) is answered, or falls back to two v2 dumps",
    modes: ["autoload"],
    run(ctx) {
      const load = ctx.load;
      assert.ok(load, "the live check made the namespace");
      const mask = parseDeserializers("all");
      using sock = openDiagSocket(load.nsPath);
      const one = new Dumper({ mask, ext: idiagExt(mask) });
      const ones = new RecSink();
      const n1 = one.dump(sock, ones);
      const two = new Dumper({ mask, ext: idiagExt(mask), oneWalk: false });
      const twos = new RecSink();
      const n2 = two.dump(sock, twos);
      assert.equal(n1, n2, "one walk and two walks see as many sockets");
      const keys = (recs: typeof ones.recs) => recs.map(recKey).sort();
      assert.deepEqual(keys(ones.recs), keys(twos.recs), "the same socket set");
      return Promise.resolve({
        sockets: n1,
        answered: one.walks.one === 1,
        fellBack: one.compatRefused === 1,
      });
    },
  },
  {
    name: "filter: the kernel takes the bytecode with the compat and the v2 request, as ss's",
    modes: ["autoload"],
    async run(ctx) {
      const load = ctx.load;
      assert.ok(load, "the live check made the namespace");
      const mask = parseDeserializers("default");
      const filter = "sport = :20000 or dport = :20001 and src 127.0.0.1 or src [::1]:20002";
      const bytecode = filterBytecode(filter);
      assert.ok(bytecode);
      const text = await cmd(["ip", "netns", "exec", load.netns, "ss", "-tanHe", filter]);
      const want = parseSs(text).map(ssAddrKey).sort();
      assert.ok(want.length > load.listeners, `ss shows ${want.length} sockets`);
      using sock = openDiagSocket(load.nsPath);
      for (const oneWalk of [true, false]) {
        const d: Dumper = new Dumper({ mask, ext: idiagExt(mask), oneWalk, bytecode });
        const sink = new RecSink();
        d.dump(sock, sink);
        assert.deepEqual(sink.recs.map(recKey).sort(), want, oneWalk ? "one walk" : "two walks");
        assert.equal(d.compatRefused, 0, "the compat request with bytecode is answered");
      }
      return { sockets: want.length, bytes: bytecode.length };
    },
  },
];

async function main(): Promise<void> {
  const out = Deno.args[0];
  if (!out) throw new Error("usage: guest.ts OUTDIR");
  const plan = JSON.parse(Deno.readTextFileSync(`${out}/plan.json`)) as Plan;
  const ctx: Ctx = { plan, out, tmp: Deno.makeTempDirSync(), cleanup: [] };
  const results: GuestResults = {
    release: Deno.osRelease(),
    mode: plan.mode,
    checks: [],
    finished: false,
  };
  const save = () =>
    Deno.writeTextFileSync(`${out}/results.json`, JSON.stringify(results, null, 2) + "\n");
  save();
  try {
    for (const check of CHECKS.filter((c) => c.modes.includes(plan.mode))) {
      const t0 = performance.now();
      const res: CheckResult = { name: check.name, ok: false, ms: 0, detail: {} };
      try {
        res.detail = await check.run(ctx);
        res.ok = true;
      } catch (err) {
        res.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      }
      res.ms = Math.round(performance.now() - t0);
      results.checks.push(res);
      save();
      console.log(
        `XK-CHECK ${res.ok ? "ok" : "FAIL"} ${check.name} (${res.ms} ms) ${
          res.ok ? JSON.stringify(res.detail) : res.error
        }`,
      );
    }
    results.finished = true;
  } finally {
    for (const c of ctx.cleanup.reverse()) {
      await c().catch((err) => console.log(`XK-CLEANUP ${(err as Error).message}`));
    }
    save();
  }
}

if (import.meta.main) await main();
