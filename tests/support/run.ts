/**
 * Runs the real entrypoints (`xtcp2`, `xtcp2ctl`, `xtcp2client`) as subprocesses, as users do,
 * with the permission flags of their `deno.json` tasks.
 *
 * @module
 */

/** The daemon's entrypoint. */
export const MAIN = new URL("../../src/cmd/xtcp2.ts", import.meta.url).pathname;

/** The `xtcp2` task's permission flags. */
export const PERMS = [
  "--allow-ffi",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-sys=hostname",
  "--allow-run=lldpcli",
];

/** The `xtcp2` task's V8 flag: `gc` for the collections between polls (src/util/idle_gc.ts). */
export const V8_FLAGS = "--v8-flags=--expose-gc";

/** argv of `deno run` on the daemon; `netns` runs it inside `ip netns exec`. */
export function xtcp2Argv(args: string[], netns?: string): string[] {
  return [
    ...(netns ? ["ip", "netns", "exec", netns] : []),
    Deno.execPath(),
    "run",
    "--quiet",
    V8_FLAGS,
    ...PERMS,
    MAIN,
    ...args,
  ];
}

/** A poll every second, each allowed 900 ms, no jitter: the cadence of the daemon tests. */
export const EVERY_SECOND: readonly string[] = [
  "-frequency",
  "1s",
  "-timeout",
  "900ms",
  "-pollJitterPct",
  "0",
];

/** Starts the daemon with piped stdout and stderr */
export function spawnXtcp2(
  args: string[],
  opts: { netns?: string; env?: Record<string, string> } = {},
): Deno.ChildProcess {
  const argv = xtcp2Argv(args, opts.netns);
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
  }).spawn();
}

/** Runs xtcp2 with the task's permission flags; `prefix` wraps it (e.g. ip netns exec). */
export async function xtcp2(
  args: string[],
  opts: { prefix?: string[]; perms?: string[] } = {},
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const argv = [
    ...(opts.prefix ?? []),
    Deno.execPath(),
    "run",
    "--quiet",
    ...(opts.perms ?? PERMS),
    MAIN,
    ...args,
  ];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

/** A loopback port nobody listens on now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** `-grpcPort` and `-promListen` on free loopback ports (never the defaults). */
export function freeListenArgs(): string[] {
  return ["-grpcPort", String(freePort()), "-promListen", `127.0.0.1:${freePort()}`];
}

/** Waits until `cond` holds (checked every 100 ms); throws naming `what` after `ms`. */
export async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * One poll of the daemon (`-maxLoops 1`) written to stdout as JSON lines, with `extra` flags
 * (`prefix` wraps it, e.g. in onlyNamespaces()); asserts it exits 0; the records and its stderr.
 */
export async function pollOnceJsonl(
  extra: string[],
  opts: { prefix?: string[] } = {},
): Promise<{ records: Record<string, unknown>[]; stderr: string }> {
  const r = await xtcp2([
    "-maxLoops",
    "1",
    "-frequency",
    "10m",
    "-timeout",
    "5m",
    "-pollJitterPct",
    "0", // else the first poll waits up to the jitter's share of 10 minutes
    "-dest",
    "stdout",
    "-marshal",
    "jsonl",
    "-grpcPort",
    String(freePort()),
    "-promListen",
    `127.0.0.1:${freePort()}`,
    ...extra,
  ], opts.prefix ? { prefix: opts.prefix } : {});
  if (r.code !== 0) throw new Error(`xtcp2 exited ${r.code}: ${r.stderr}`);
  const records = new TextDecoder().decode(r.stdout).split("\n").filter((l) => l)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { records, stderr: r.stderr };
}

/** Runs `cmd args…` (stdin closed); its stdout, or an Error with its stderr when it fails. */
export async function output(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string> } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
  }).output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: exit ${out.code}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** The repository's root directory (ends with `/`). */
export const ROOT: string = new URL("../../", import.meta.url).pathname;

/**
 * The permission flags, script and arguments of a deno.json task (after `deno run`), the script
 * as an absolute path.
 */
export function taskArgv(task: string): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
    string,
    string
  >;
  const words = tasks[task].split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "run") {
    throw new Error(`task ${task} is not a deno run: ${tasks[task]}`);
  }
  return words.slice(2).map((w) => (w.endsWith(".ts") ? `${ROOT}${w}` : w));
}

/** Runs a deno.json task with more arguments (and `stdin` when given); its output. */
export function runTask(task: string, args: string[], stdin?: string): Promise<Deno.CommandOutput> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...taskArgv(task), ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  if (stdin === undefined) return cmd.output();
  const child = cmd.spawn();
  const w = child.stdin.getWriter();
  return w.write(new TextEncoder().encode(stdin)).then(() => w.close()).then(() => child.output());
}
