/**
 * `ns`: namespace discovery alone (no netlink, no poller), pass after pass, for checking what the
 * daemon would find on a host: each namespace that appears or vanishes is logged with where it
 * was found, and counted on its own /metrics.
 *
 * @module
 */
import { parseArgs } from "node:util";
import client from "prom-client";
import { netnsInode } from "../../ffi/libc.ts";
import { NamespaceWatcher, type WatchedNs } from "../netns/watch.ts";
import { parseListen } from "../util/address.ts";
import { parseDuration } from "../util/duration.ts";
import { VERSION } from "../version.ts";
import { normalizeGoFlags, UsageError } from "./args.ts";
import { intFlag, runMain } from "./client_common.ts";

const USAGE = `Usage: ns [flags]

Namespace discovery only, as the daemon does it (every process's /proc/<pid>/ns/net and the bind
mounts of /run/netns and /run/docker/netns), without entering any namespace.

  --promListen ADDR   listener of /metrics and /healthz                      [127.0.0.1:9010]
  --promPath PATH     metrics path                                           [/metrics]
  --interval D        time between discovery passes                          [5s]
  --once              one pass: print each namespace as a JSON line and exit
  -d N                0 quiet, 1 a line per namespace added or deleted, >10 one per pass  [1]
  -v                  print the version and exit
  --profile.mode M, --pprof=BOOL   the original's profiling flags: accepted, no effect here
`;

const SOURCES = ["proc", "bindmount"] as const;

function line(what: string, ns: WatchedNs): string {
  return `ns: ${what} ${ns.name} (inode ${ns.inode}, ${ns.source}, ${ns.path})`;
}

/** Runs the tool; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: normalizeGoFlags(args),
    options: {
      promListen: { type: "string", default: "127.0.0.1:9010" },
      promPath: { type: "string", default: "/metrics" },
      interval: { type: "string", default: "5s" },
      once: { type: "boolean", default: false },
      d: { type: "string", default: "1" },
      v: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      // The original's Go profiling flags: accepted, no effect here.
      "profile.mode": { type: "string" },
      pprof: { type: "string" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.v) {
    console.log(`ns ${VERSION}`);
    return 0;
  }
  const level = intFlag("d", values.d, 0);
  let intervalMs: number;
  try {
    intervalMs = parseDuration(values.interval);
  } catch (err) {
    throw new UsageError(
      `Invalid value for --interval: "${values.interval}": ${(err as Error).message}`,
    );
  }
  if (intervalMs <= 0) throw new UsageError(`--interval must be above 0`);
  const watcher = new NamespaceWatcher({ selfInode: netnsInode("/proc/self/ns/net") });
  if (values.once) {
    watcher.pass();
    for (const ns of watcher.current.values()) {
      console.log(JSON.stringify({ ...ns, inode: String(ns.inode) }));
    }
    return 0;
  }

  const registry = new client.Registry();
  const registers = [registry];
  const found = new client.Gauge({
    name: "xtcp_ns_found",
    help: "namespaces found by the last discovery pass, by where they were found",
    labelNames: ["source"],
    registers,
  });
  const tracked = new client.Gauge({ name: "xtcp_ns_tracked", help: "namespaces now", registers });
  const added = new client.Counter({
    name: "xtcp_ns_added_total",
    help: "namespaces that appeared, by where they were found",
    labelNames: ["source"],
    registers,
  });
  const deleted = new client.Counter({
    name: "xtcp_ns_deleted_total",
    help: "namespaces that vanished, by where they had been found",
    labelNames: ["source"],
    registers,
  });
  const passes = new client.Counter({
    name: "xtcp_ns_passes_total",
    help: "discovery passes",
    registers,
  });
  const skipped = new client.Counter({
    name: "xtcp_ns_skipped_total",
    help: "processes whose namespace could not be read (exited, permissions)",
    registers,
  });
  const seconds = new client.Gauge({
    name: "xtcp_ns_pass_seconds",
    help: "duration of the last discovery pass",
    registers,
  });
  for (const s of SOURCES) {
    added.labels(s).inc(0);
    deleted.labels(s).inc(0);
  }
  const pass = () => {
    const p = watcher.pass();
    for (const ns of p.added) {
      added.labels(ns.source).inc();
      if (level >= 1) console.error(line("added", ns));
    }
    for (const ns of p.deleted) {
      deleted.labels(ns.source).inc();
      if (level >= 1) console.error(line("deleted", ns));
    }
    for (const s of SOURCES) found.labels(s).set(p.found[s]);
    tracked.set(watcher.current.size);
    passes.inc();
    skipped.inc(p.skipped);
    seconds.set(p.ms / 1000);
    if (level > 10) {
      console.error(
        `ns: pass ${watcher.totals.passes}: ${watcher.current.size} namespaces (${p.found.proc} proc, ${p.found.bindmount} bind mount), ${
          p.ms.toFixed(1)
        } ms`,
      );
    }
  };
  pass();

  const { hostname, port } = parseListen(values.promListen);
  const server = Deno.serve({ hostname, port, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/healthz") return new Response("ok\n");
    if (path !== values.promPath) return new Response("not found\n", { status: 404 });
    return new Response(await registry.metrics(), {
      headers: { "content-type": registry.contentType },
    });
  });
  if (level >= 1) {
    console.error(
      `ns: ${watcher.current.size} namespaces; metrics on http://${values.promListen}${values.promPath}, a pass every ${values.interval}`,
    );
  }
  const timer = setInterval(pass, intervalMs);
  const stopped = Promise.withResolvers<Deno.Signal>();
  const listeners = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => stopped.resolve(sig);
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  const sig = await stopped.promise;
  clearInterval(timer);
  for (const [s, h] of listeners) Deno.removeSignalListener(s, h);
  await server.shutdown();
  if (level >= 1) {
    const t = watcher.totals;
    console.error(
      `ns: ${sig}: ${t.passes} passes, added ${t.added.proc} proc + ${t.added.bindmount} bind mount, deleted ${t.deleted.proc} + ${t.deleted.bindmount}`,
    );
  }
  return 0;
}

if (import.meta.main) await runMain("ns", main);
