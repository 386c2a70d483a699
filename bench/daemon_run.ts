/**
 * The daemon as users run it, for the benchmarks: a child process `deno run <the xtcp2 task's
 * flags> src/cmd/xtcp2.ts …` (the flags read from `deno.json`), in a pid and mount namespace of
 * its own (`unshare`) where /run/netns holds only the namespaces it is given and
 * /run/docker/netns is empty, its own network namespace being the first of them: it polls
 * exactly those, whatever else the host runs (every other namespace would cost it a whole dump
 * of the host's TCP hash table per poll). What it logs, and what /proc says about it half-way
 * between its polls.
 *
 * @module
 */

const MAIN = new URL("../src/cmd/xtcp2.ts", import.meta.url).pathname;

/** The permission flags of the `xtcp2` task in deno.json: `deno run <these> src/cmd/xtcp2.ts`. */
function taskFlags(): string[] {
  const cfg = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url))) as {
    tasks: Record<string, string>;
  };
  const task = cfg.tasks.xtcp2;
  const words = task?.split(/\s+/) ?? [];
  const from = words.indexOf("run");
  const to = words.indexOf("src/cmd/xtcp2.ts");
  if (from < 0 || to < from) throw new Error(`deno.json: unexpected xtcp2 task: ${task}`);
  return words.slice(from + 1, to);
}
const FLAGS = taskFlags();

/** Runs `cmd`; its stdout, or an error with its stderr. */
export async function output(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
  return new TextDecoder().decode(r.stdout);
}

/** Clock ticks per second of /proc's times. */
export const CLK_TCK = Number((await output("getconf", ["CLK_TCK"])).trim()) || 100;

/** What /proc says about a process at one moment. */
export interface ProcSample {
  /** utime + stime of every thread, dead ones included, in ms (resolution 1000 / CLK_TCK). */
  cpuMs: number;
  /** utime alone. */
  userMs: number;
  /** utime + stime of V8's worker threads alive now (concurrent GC work, mostly). */
  v8WorkersMs: number;
  /** The CPU time of each thread alive now, by thread id, in ns (schedstat: exact). */
  threadNs: Map<number, number>;
  rssKb: number;
  hwmKb: number;
}

/**
 * Reads /proc/<pid>/stat, status, and each thread's stat and schedstat (through `sh`: Deno
 * reads /proc only with --allow-all).
 */
export async function procSample(pid: number): Promise<ProcSample> {
  const text = await output("sh", [
    "-c",
    'cat "/proc/$1/stat" "/proc/$1/status"; cat "/proc/$1"/task/*/stat 2>/dev/null; ' +
    'for t in "/proc/$1"/task/*; do echo "schedstat ${t##*/} $(cat "$t/schedstat" 2>/dev/null)"; done',
    "sh",
    String(pid),
  ]);
  const ms = (ticks: number) => (ticks * 1000) / CLK_TCK;
  // After the ")" that ends the name comes field 3 (state); utime and stime are fields 14, 15.
  const times = (stat: string) => {
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(f[14 - 3]), sys: Number(f[15 - 3]) };
  };
  const [proc = "", ...rest] = text.split("\n");
  const p = times(proc);
  let v8 = 0;
  const threadNs = new Map<number, number>();
  for (const line of rest) {
    // "schedstat <tid> <ns on the CPU> <ns waiting> <timeslices>"; nothing after the tid when
    // the thread ended while it was read.
    const m = /^schedstat (\d+) (\d+) /.exec(line);
    if (m) threadNs.set(Number(m[1]), Number(m[2]));
    if (!line.includes("(V8 ")) continue; // "V8 DefaultWorke" (the name is cut at 15 bytes)
    const t = times(line);
    v8 += t.user + t.sys;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  return {
    cpuMs: ms(p.user + p.sys),
    userMs: ms(p.user),
    v8WorkersMs: ms(v8),
    threadNs,
    rssKb: kb("VmRSS"),
    hwmKb: kb("VmHWM"),
  };
}

/**
 * The process's CPU time from sample `a` to `b`, in ms: exact (the sum over its threads of
 * their schedstat time since `a`) when every thread of `a` is still there at `b`; else (a thread
 * ended, and its time since `a` is only in /proc/<pid>/stat) from the process's clock ticks.
 */
export function cpuBetween(a: ProcSample, b: ProcSample): { ms: number; exact: boolean } {
  if (a.threadNs.size === 0) return { ms: b.cpuMs - a.cpuMs, exact: false };
  let ns = 0;
  for (const [tid, at] of a.threadNs) {
    const now = b.threadNs.get(tid);
    if (now === undefined) return { ms: b.cpuMs - a.cpuMs, exact: false };
    ns += now - at;
  }
  for (const [tid, now] of b.threadNs) if (!a.threadNs.has(tid)) ns += now;
  return { ms: ns / 1e6, exact: true };
}

/** One poll's summary line. */
export interface PollLine {
  n: number;
  namespaces: number;
  sockets: number;
  bytes: number;
  flushes: number;
  ms: number;
  /** When the line arrived (performance.now() of this process). */
  at: number;
}

const POLL_RE =
  /^xtcp2: poll (\d+): (\d+) namespaces, (\d+) sockets, (\d+) bytes in (\d+) flushes, ([\d.]+) ms/;

/**
 * The shell that hides every namespace but those named in $XTCP2_BENCH_NS (bind mounts of them
 * in a fresh tmpfs over /run/netns), empties /run/docker/netns, then execs its arguments.
 */
const HIDE = [
  "set -e",
  "t=$(mktemp -d)",
  'for n in $XTCP2_BENCH_NS; do touch "$t/$n"; mount --bind "/run/netns/$n" "$t/$n"; done',
  "mount -t tmpfs xtcp2-bench /run/netns",
  'for n in $XTCP2_BENCH_NS; do touch "/run/netns/$n"; mount --bind "$t/$n" "/run/netns/$n";' +
  ' umount "$t/$n"; done',
  'rm -r "$t"',
  "[ ! -d /run/docker/netns ] || mount -t tmpfs xtcp2-bench /run/docker/netns",
  'exec "$@"',
].join("\n");

/**
 * The daemon's flags in a bench: `dest`, protobufList, a poll every `frequencyMs` with no jitter
 * (timeout 0.8 of it), the gRPC and metrics listeners on the bench's ports, then `extra`.
 */
export function benchArgs(o: {
  dest: string;
  frequencyMs: number;
  grpcPort: number;
  promPort: number;
  extra?: string[];
}): string[] {
  return [
    "-dest",
    o.dest,
    "-marshal",
    "protobufList",
    "-frequency",
    `${o.frequencyMs}ms`,
    "-timeout",
    `${Math.round(o.frequencyMs * 0.8)}ms`,
    "-pollJitterPct",
    "0",
    "-grpcPort",
    String(o.grpcPort),
    "-promListen",
    `127.0.0.1:${o.promPort}`,
    ...(o.extra ?? []),
  ];
}

/** Options of {@link DaemonRun.start}. */
export interface DaemonRunOptions {
  /** The poll cadence given to the daemon (`-frequency`): samples are taken half-way. */
  frequencyMs: number;
  /** `--v8-flags=` for the daemon's deno (e.g. `--trace-gc`, whose lines are kept). */
  v8Flags?: string;
}

/** The daemon, polling the namespaces it was given (alone: see the module doc), and its log. */
export class DaemonRun {
  /** Poll lines by poll number. */
  readonly polls = new Map<number, PollLine>();
  /** /proc samples taken half-way after poll n, by n. */
  readonly samples = new Map<number, ProcSample>();
  /** When the daemon was started (performance.now()). */
  readonly startedAt = performance.now();
  log = "";
  /** What it wrote to stdout (V8's --trace-gc lines). */
  stdout = "";
  private readonly reading: Promise<unknown>;
  private sampling: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly child: Deno.ChildProcess,
    readonly pid: number,
    private readonly frequencyMs: number,
  ) {
    this.reading = Promise.all([
      (async () => {
        let rest = "";
        for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
          this.log += chunk;
          rest += chunk;
          const lines = rest.split("\n");
          rest = lines.pop() ?? "";
          for (const line of lines) this.line(line);
        }
      })().catch(() => {}),
      (async () => {
        for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
          this.stdout += chunk;
        }
      })().catch(() => {}),
    ]);
  }

  private line(line: string): void {
    const m = POLL_RE.exec(line);
    if (!m) return;
    const p: PollLine = {
      n: Number(m[1]),
      namespaces: Number(m[2]),
      sockets: Number(m[3]),
      bytes: Number(m[4]),
      flushes: Number(m[5]),
      ms: Number(m[6]),
      at: performance.now(),
    };
    this.polls.set(p.n, p);
    // Half-way to the next poll: this poll's delivery is done, the next has not started.
    const at = new Promise((r) => setTimeout(r, this.frequencyMs / 2))
      .then(() => procSample(this.pid))
      .then((s) => void this.samples.set(p.n, s), () => {});
    this.sampling = Promise.all([this.sampling, at]);
  }

  /**
   * Starts the daemon with `args` after the task's flags, in the network namespace
   * `namespaces[0]`, seeing every one of `namespaces` (names under /run/netns) and no other.
   */
  static async start(
    namespaces: readonly string[],
    args: string[],
    opts: DaemonRunOptions,
  ): Promise<DaemonRun> {
    const child = new Deno.Command("nsenter", {
      args: [
        `--net=/run/netns/${namespaces[0]}`,
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
        HIDE,
        "sh",
        Deno.execPath(),
        "run",
        "--quiet",
        ...(opts.v8Flags ? [`--v8-flags=${opts.v8Flags}`] : []),
        ...FLAGS,
        MAIN,
        ...args,
      ],
      env: { XTCP2_BENCH_NS: namespaces.join(" ") },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // nsenter execs unshare (same pid), which forks the shell that execs deno: its child.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const kids = await output("cat", [`/proc/${child.pid}/task/${child.pid}/children`])
        .catch(() => "");
      const pid = Number(kids.trim().split(" ")[0]);
      if (pid) {
        const comm = await output("cat", [`/proc/${pid}/comm`]).catch(() => "");
        if (comm.trim() === "deno") return new DaemonRun(child, pid, opts.frequencyMs);
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error("the daemon did not start");
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits until poll `n` was logged and sampled. */
  async waitPoll(n: number): Promise<void> {
    const deadline = Date.now() + (n + 5) * this.frequencyMs + 30_000;
    while (!this.samples.has(n)) {
      if (Date.now() > deadline) throw new Error(`no poll ${n} within the time:\n${this.log}`);
      const st = await Promise.race([
        this.child.status,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
      ]);
      if (st) {
        await this.reading;
        throw new Error(`the daemon exited (${st.code}) before poll ${n}:\n${this.log}`);
      }
    }
  }

  /** SIGTERM to the daemon; resolves with its log once it exited. */
  async stop(): Promise<string> {
    Deno.kill(this.pid, "SIGTERM");
    const st = await this.child.status;
    await this.reading;
    await this.sampling;
    if (st.code !== 0) throw new Error(`the daemon exited with ${st.code}:\n${this.log}`);
    return this.log;
  }
}

/** The median of `xs` (NaN when empty). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
