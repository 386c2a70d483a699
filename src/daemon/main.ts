/**
 * The daemon's entrypoint logic: configuration, capability check, the home namespace, the
 * daemon, its API listeners, and one shutdown signal from SIGINT/SIGTERM down to all of them.
 *
 * @module
 */
import { effectiveCaps, netnsInode } from "../../ffi/libc.ts";
import { NetnsHome } from "../../ffi/netns.ts";
import { serveGrpc } from "../api/grpc.ts";
import { healthcheck, serveHttp } from "../api/http.ts";
import { Metrics } from "../api/metrics.ts";
import { ConfigError } from "../config/config_error.ts";
import { FLAGS, GO_RUNTIME_FLAGS, PROCESS_FLAGS } from "../config/flags.ts";
import { loadConfig } from "../config/load.ts";
import { redactedJson } from "../config/redact.ts";
import { errorMessage, isFatal } from "../util/errors.ts";
import { Counters, Logger } from "../util/log.ts";
import { VERSION } from "../version.ts";
import type { PollSummary } from "../poll/poller.ts";
import { checkCapabilities } from "./caps.ts";
import { Daemon } from "./daemon.ts";

/** The `-v` line, in the original's shape. */
export const VERSION_LINE = `xtcp commit:${VERSION}\tdate(UTC):unknown\tversion:${VERSION}`;

/** How long shutdown may take before the process exits anyway (status 1). */
export const SHUTDOWN_GUARD_MS = 5000;

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
    if (!f.flag) continue;
    lines.push(`  --${f.flag.padEnd(22)} ${f.help} [${f.def}]${f.env ? ` (${f.env})` : ""}`);
  }
  for (const [name, f] of Object.entries(PROCESS_FLAGS)) {
    lines.push(`  --${name.padEnd(22)} ${f.help} [${f.def}] (${f.env})`);
  }
  for (const [name, what] of Object.entries(GO_RUNTIME_FLAGS)) {
    lines.push(`  --${name.padEnd(22)} accepted for compatibility, no effect here (${what})`);
  }
  lines.push(
    "  --healthcheck            exit 0 if the running daemon's /readyz answers 200 within 3 s, else 1",
    "  --conf                   print the resolved configuration (secrets blanked) and exit",
    "  -v                       print the version and exit",
    "",
    "XTCP_CONFIG_JSON (an XtcpConfig in protojson) replaces flags and environment when set.",
  );
  return lines.join("\n");
}

/** Resolves with the first of SIGINT/SIGTERM, and aborts `controller` with it. */
function onStopSignal(controller: AbortController): Disposable {
  const handlers: [Deno.Signal, () => void][] = [];
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const h = () => controller.abort(sig);
    Deno.addSignalListener(sig, h);
    handlers.push([sig, h]);
  }
  return {
    [Symbol.dispose]() {
      for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
    },
  };
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
  const proc = loaded.process;
  if (loaded.healthcheck) return await healthcheck(proc.promListen);
  const cfg = loaded.config;
  if (loaded.conf) {
    console.log(redactedJson(cfg));
    return 0;
  }
  const log = new Logger(cfg.debugLevel);
  const counters = new Counters();
  if (loaded.ignored.length) {
    log.info(
      `accepted for compatibility, no effect in this runtime: ${
        loaded.ignored.map((f) => `-${f}`).join(", ")
      }`,
    );
  }
  try {
    for (const w of checkCapabilities(effectiveCaps(), { ioUring: cfg.ioUring })) log.warn(w);
  } catch (err) {
    console.error(errorMessage(err));
    return 1;
  }
  const shutdown = new AbortController();
  using _signals = onStopSignal(shutdown);
  using home = NetnsHome.open();
  await using stack = new AsyncDisposableStack();
  const daemon = new Daemon({
    config: cfg,
    home,
    selfInode: netnsInode("/proc/self/ns/net"),
    log,
    counters,
    hostname: Deno.hostname(),
    signal: shutdown.signal,
  });
  const metrics = new Metrics(
    counters,
    () => daemon.namespaces,
    () => daemon.delivery,
    () => daemon.sharedTables,
  );
  let last: PollSummary | undefined;
  daemon.onPoll = (s) => {
    last = s;
    metrics.poll(s);
  };
  try {
    const http = await serveHttp({
      listen: proc.promListen,
      metricsPath: proc.promPath,
      token: proc.apiToken,
      metrics,
      ready: () => daemon.ready,
    });
    stack.defer(async () => {
      daemon.phase = "closing the HTTP listener";
      await http.shutdown();
    });
    const grpcClosing = new AbortController();
    const grpc = await serveGrpc({
      closing: grpcClosing.signal,
      daemon,
      metrics,
      hostname: proc.grpcAddress,
      port: cfg.grpcPort,
      token: proc.apiToken,
      queueLimit: Number(proc.streamQueue),
    });
    stack.defer(() => {
      daemon.phase = "closing the gRPC server";
      grpcClosing.abort();
      grpc.close();
    });
    log.debug(`listening: http ${proc.promListen}, grpc ${proc.grpcAddress}:${cfg.grpcPort}`);
    stack.use(daemon);
    await daemon.start();
  } catch (err) {
    console.error(`xtcp2: cannot start: ${errorMessage(err)}`);
    return 1;
  }
  const stopped = new Promise<void>((resolve) =>
    shutdown.signal.addEventListener("abort", () => resolve(), { once: true })
  );
  try {
    await Promise.race([stopped, daemon.wait()]);
  } catch (err) {
    // Reported by the daemon. The thread may be in the wrong namespace: nothing more is done
    // (no flush, no connection), the process ends here.
    if (isFatal(err)) Deno.exit(1);
    log.error(`Stopping after an error: ${errorMessage(err)}`);
  }
  if (shutdown.signal.aborted) log.info(`${shutdown.signal.reason} caught: flushing and stopping`);
  // Never hang at shutdown: what does not finish within the guard is abandoned, and said.
  const guard = setTimeout(() => {
    log.error(
      `Shutdown did not finish within ${SHUTDOWN_GUARD_MS / 1000} s: stuck ${daemon.phase}`,
    );
    Deno.exit(1);
  }, SHUTDOWN_GUARD_MS);
  try {
    await stack.disposeAsync();
  } finally {
    clearTimeout(guard);
  }
  // A run that ended by itself (maxLoops) whose last poll got nothing from any namespace failed.
  if (!shutdown.signal.aborted && last && last.namespaces > 0 && last.failed === last.namespaces) {
    log.error(`Every dump of the last poll failed (${last.failed} namespaces): exit status 1`);
    return 1;
  }
  return 0;
}
