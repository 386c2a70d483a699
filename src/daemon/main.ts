/**
 * The daemon: configuration, capability check, namespaces, poller, destination, signals.
 *
 * @module
 */
import { netnsInode } from "../../ffi/libc.ts";
import { openDestination } from "../dest/destination.ts";
import { marshaller } from "../format/marshal.ts";
import { NamespaceRegistry } from "../netns/registry.ts";
import { Poller } from "../poll/poller.ts";
import { CaptureWriter } from "./capture_writer.ts";
import { checkCapabilities } from "./caps.ts";
import { ConfigError, durationMs, FLAGS, loadConfig, redactedJson } from "./config.ts";
import { Counters, Logger } from "./log.ts";
import { VERSION } from "../version.ts";

/** The `-v` line, in the original's shape. */
export const VERSION_LINE = `xtcp commit:${VERSION}\tdate(UTC):unknown\tversion:${VERSION}`;

/** `--help` text. */
export function usage(): string {
  const lines = [
    `xtcp2 ${VERSION}: stream the kernel's per-socket TCP state (netlink inet_diag) of every network namespace`,
    "",
    "Usage:",
    "  xtcp2 [flags]                   run the daemon",
    "  xtcp2 decode FILE.pcap [flags]  decode an nlmon capture (--format jsonl|protobuflist)",
    "",
    "Flags (-flag and --flag both work; each has the environment variable shown):",
  ];
  for (const f of FLAGS) {
    lines.push(`  --${f.flag.padEnd(22)} ${f.help} [${f.def}]${f.env ? ` (${f.env})` : ""}`);
  }
  lines.push(
    "  --promListen             HTTP listener for /metrics /healthz /readyz [127.0.0.1:9088] (PROM_LISTEN)",
    "  --conf                   print the resolved configuration (secrets blanked) and exit",
    "  -v                       print the version and exit",
    "",
    "XTCP_CONFIG_JSON (an XtcpConfig in protojson) replaces flags and environment when set.",
  );
  return lines.join("\n");
}

/** Runs the daemon until SIGINT/SIGTERM or maxLoops; returns the exit status. */
export async function runDaemon(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  let loaded;
  try {
    loaded = loadConfig(args, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`xtcp2: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (loaded.help) {
    console.log(usage());
    return 0;
  }
  if (loaded.version) {
    console.log(VERSION_LINE);
    return 0;
  }
  const cfg = loaded.config;
  if (loaded.conf) {
    console.log(redactedJson(cfg));
    return 0;
  }
  const log = new Logger(cfg.debugLevel);
  const counters = new Counters();
  try {
    for (const w of checkCapabilities()) log.warn(w);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  const selfInode = netnsInode("/proc/self/ns/net");
  const hostname = cfg.hostname || Deno.hostname();
  const dest = await openDestination(cfg.dest, {
    marshal: cfg.marshalTo,
    fileMaxBytes: Number(cfg.fileMaxBytes) || 64 * 1024 * 1024,
    fileMaxAgeMs: durationMs(cfg.fileMaxAge) || 3_600_000,
    counters,
    log,
  });
  using registry = new NamespaceRegistry({
    selfInode,
    rcvTimeoutMs: Number(cfg.nlTimeoutMilliseconds),
    log,
    counters,
  });
  using capture = cfg.writeFiles > 0
    ? new CaptureWriter(cfg.capturePath, cfg.writeFiles)
    : undefined;
  const poller = new Poller({
    config: cfg,
    registry,
    dest,
    marshaller: marshaller(cfg.marshalTo, cfg.csvColumns),
    log,
    counters,
    hostname,
    daemonVersion: cfg.daemonVersion || VERSION,
    ...(capture ? { onDatagram: (b: Uint8Array, out: boolean) => capture.write(b, out) } : {}),
  });
  const stop = new AbortController();
  const onSignal = (sig: string) => () => {
    log.info(`${sig} caught: flushing and stopping`);
    stop.abort();
    // Never hang at shutdown: a destination that does not drain within 5 s is abandoned.
    setTimeout(() => {
      log.error("shutdown took over 5 s: exiting without waiting further");
      Deno.exit(0);
    }, 5000).unref?.();
  };
  const sigint = onSignal("SIGINT");
  const sigterm = onSignal("SIGTERM");
  Deno.addSignalListener("SIGINT", sigint);
  Deno.addSignalListener("SIGTERM", sigterm);
  // Namespace changes: reconcile now on a /run/netns change, and on the timer.
  let reconcileQueued = false;
  const reconcileSoon = () => {
    if (reconcileQueued) return;
    reconcileQueued = true;
    setTimeout(() => {
      reconcileQueued = false;
      if (!stop.signal.aborted) registry.reconcile();
    }, 50);
  };
  const watchers: Deno.FsWatcher[] = [];
  for (const dir of ["/run/netns", "/run/docker/netns"]) {
    try {
      const w = Deno.watchFs(dir, { recursive: false });
      watchers.push(w);
      (async () => {
        for await (const _ of w) reconcileSoon();
      })().catch((err) => log.error(`watching ${dir}: ${(err as Error).message}`));
    } catch {
      log.debug(`${dir} absent: new namespaces there are found by the periodic reconcile`);
    }
  }
  const reconcileMs = durationMs(cfg.reconcileFrequency);
  const timer = reconcileMs > 0 ? setInterval(() => registry.reconcile(), reconcileMs) : undefined;
  registry.reconcile();
  log.info(
    `started: ${registry.states.size} namespaces, every ${
      durationMs(cfg.pollFrequency)
    } ms to ${cfg.dest} as ${cfg.marshalTo}`,
  );
  try {
    await poller.run(stop.signal, () => {
      if (cfg.reconcileBeforePoll) registry.reconcile();
    });
  } finally {
    if (timer !== undefined) clearInterval(timer);
    for (const w of watchers) w.close();
    Deno.removeSignalListener("SIGINT", sigint);
    Deno.removeSignalListener("SIGTERM", sigterm);
    await dest.close();
  }
  return 0;
}
