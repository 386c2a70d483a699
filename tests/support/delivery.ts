/**
 * The daemon as a delivery test runs it (polling every second into one destination, short
 * retry delays) and what its log says: the rows each poll collected and the closing account of
 * the delivery queue (`delivery to …: N rows handed over, N acknowledged, N dropped (…), N
 * spooled`).
 *
 * The daemon polls every namespace of the machine, those of other tests running at the same
 * time too (a benchmark's 100k sockets fill any queue). {@link onlyNamespaces} runs it where it
 * sees just one test's namespace besides its own.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EVERY_SECOND, freePort, until, xtcp2Argv } from "./run.ts";

/**
 * An argv prefix: what follows runs seeing only the namespace bind-mounted as
 * `/run/netns/<netns>` (if given) and its own. It runs in new mount and PID namespaces, with a
 * fresh /proc (its own processes only) and /run/netns, /run/docker/netns emptied but for that one
 * bind mount, as PID 1 of the new PID namespace: unshare does not pass signals on, so signal it
 * by its pid outside ({@link RunningDaemon.pid}).
 */
export function onlyNamespaces(netns = ""): string[] {
  const script = [
    'if [ -n "$1" ]; then',
    '  t=$(mktemp -d); touch "$t/ns"; mount --bind "/run/netns/$1" "$t/ns"',
    "fi",
    "mount -t tmpfs tmpfs /run/netns",
    'if [ -n "$1" ]; then',
    '  touch "/run/netns/$1"; mount --bind "$t/ns" "/run/netns/$1"; umount "$t/ns"; rm -r "$t"',
    "fi",
    "if [ -d /run/docker/netns ]; then mount -t tmpfs tmpfs /run/docker/netns; fi",
    "shift",
    'exec "$@"',
  ].join("\n");
  return [
    "unshare",
    "--mount",
    "--pid",
    "--fork",
    "--mount-proc",
    "--",
    "sh",
    "-ec",
    script,
    "sh",
    netns,
  ];
}

/** A process started by {@link spawnIsolated}, and its stderr so far. */
export interface IsolatedProc {
  child: Deno.ChildProcess;
  /** The process's own pid (not that of unshare). */
  pid: () => Promise<number>;
  /** Everything it wrote to stderr so far. */
  log: () => string;
  /** Resolves once stderr is closed. */
  drained: Promise<void>;
}

/** A running daemon and its stderr so far. */
export interface RunningDaemon extends IsolatedProc {
  /** Its gRPC port and its HTTP (metrics, probes) port, on 127.0.0.1. */
  grpcPort: number;
  httpPort: number;
}

/** The child processes of `pid`. */
export function children(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter((p) => p).map(Number);
  } catch {
    return [];
  }
}

/**
 * Starts `argv` (a program and its arguments) seeing only the namespace `netns` besides its own
 * (see {@link onlyNamespaces}), with stdout ignored and stderr collected.
 */
export function spawnIsolated(argv: string[], netns = ""): IsolatedProc {
  const all = [...onlyNamespaces(netns), ...argv];
  const child = new Deno.Command(all[0] ?? "", {
    args: all.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const drained = (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) err += c;
  })().catch(() => {});
  void child.stdout.cancel();
  let known = 0;
  const pid = async () => {
    if (!known) {
      await until("the process under unshare", () => (known = children(child.pid)[0] ?? 0) > 0);
    }
    return known;
  };
  return { child, pid, log: () => err, drained };
}

/**
 * The daemon polling every second into `dest` as `marshal`, with `extra` flags, seeing only the
 * namespace `netns` besides its own (see {@link onlyNamespaces}).
 */
export function daemon(
  dest: string,
  marshal = "protobufList",
  extra: string[] = [],
  netns = "",
): RunningDaemon {
  const grpcPort = freePort();
  const httpPort = freePort();
  const proc = spawnIsolated(
    xtcp2Argv([
      ...EVERY_SECOND,
      "-dest",
      dest,
      "-marshal",
      marshal,
      "-destRetryInitial",
      "200ms",
      "-destRetryMax",
      "1s",
      "-grpcPort",
      String(grpcPort),
      "-promListen",
      `127.0.0.1:${httpPort}`,
      ...extra,
    ]),
    netns,
  );
  return { ...proc, grpcPort, httpPort };
}

/** Stops `d` with SIGTERM; asserts it exits 0; returns its whole log. */
export async function stopDaemon(d: IsolatedProc): Promise<string> {
  Deno.kill(await d.pid(), "SIGTERM");
  const status = await d.child.status;
  await d.drained;
  assert.equal(status.code, 0, d.log());
  return d.log();
}

/** Completed polls in `log`. */
export function polls(log: string): number {
  return [...log.matchAll(/^xtcp2: poll \d+: /gm)].length;
}

/** Waits until `d` has logged `n` more polls than `from`. */
export async function morePolls(d: RunningDaemon, n: number, from = polls(d.log())): Promise<void> {
  await until(`${n} more polls`, () => polls(d.log()) >= from + n, 10_000 + n * 3000);
}

/** Rows the daemon's poll log says it collected. */
export function collected(log: string): number {
  return [...log.matchAll(/^xtcp2: poll \d+: \d+ namespaces, (\d+) sockets/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
}

/** The closing account of the delivery queue, in rows. */
export interface Account {
  handedOver: number;
  acknowledged: number;
  dropped: number;
  /** Dropped rows by reason (`rejected`, `shutdown`, …). */
  reasons: Record<string, number>;
  spooled: number;
}

/** The daemon's closing `delivery to SCHEME: …` line, taken apart. */
export function account(log: string, scheme: string): Account {
  const m = new RegExp(
    `delivery to ${scheme}: (\\d+) rows handed over, (\\d+) acknowledged, (\\d+) dropped(?: \\(([^)]*)\\))?, (\\d+) spooled`,
  ).exec(log);
  assert.ok(m, `no delivery account for ${scheme} in the log:\n${log}`);
  const reasons: Record<string, number> = {};
  for (const part of (m[4] ?? "").split(", ").filter((p) => p)) {
    const [reason, n] = part.split(" ");
    reasons[reason ?? ""] = Number(n);
  }
  return {
    handedOver: Number(m[1]),
    acknowledged: Number(m[2]),
    dropped: Number(m[3]),
    reasons,
    spooled: Number(m[5]),
  };
}
