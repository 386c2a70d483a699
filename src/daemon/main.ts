/**
 * The daemon: configuration, capability check, namespaces, poller, destination, signals.
 *
 * @module
 */
import { effectiveCaps, netnsInode } from "../../ffi/libc.ts";
import { serveGrpc } from "../api/grpc.ts";
import { healthcheck, serveHttp } from "../api/http.ts";
import { checkCapabilities } from "./caps.ts";
import { ConfigError, FLAGS, loadConfig, PROCESS_FLAGS, redactedJson } from "./config.ts";
import { Daemon } from "./daemon.ts";
import { Metrics } from "./metrics.ts";
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
  for (const [name, f] of Object.entries(PROCESS_FLAGS)) {
    lines.push(`  --${name.padEnd(22)} ${f.help} [${f.def}] (${f.env})`);
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
  try {
    for (const w of checkCapabilities(effectiveCaps(), { ioUring: cfg.ioUring })) log.warn(w);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  const selfInode = netnsInode("/proc/self/ns/net");
  const daemon = new Daemon(cfg, selfInode, log, counters, Deno.hostname());
  const metrics = new Metrics(counters, () => daemon.namespaces);
  daemon.onPoll = (s) => metrics.poll(s);
  let http: Deno.HttpServer<Deno.NetAddr> | undefined;
  let grpc: Awaited<ReturnType<typeof serveGrpc>> | undefined;
  try {
    http = await serveHttp({
      listen: proc.promListen,
      metricsPath: proc.promPath,
      token: proc.apiToken,
      metrics,
      ready: () => daemon.ready,
    });
    grpc = await serveGrpc({
      daemon,
      metrics,
      hostname: proc.grpcAddress,
      port: cfg.grpcPort,
      token: proc.apiToken,
      queueLimit: Number(proc.streamQueue),
    });
    log.debug(`listening: http ${proc.promListen}, grpc ${proc.grpcAddress}:${cfg.grpcPort}`);
    await daemon.start();
  } catch (err) {
    console.error(`xtcp2: cannot start: ${(err as Error).message}`);
    await http?.shutdown();
    grpc?.close();
    return 1;
  }
  const stop = new Promise<string>((resolve) => {
    const on = (sig: "SIGINT" | "SIGTERM") => {
      const h = () => {
        Deno.removeSignalListener(sig, h);
        resolve(sig);
      };
      Deno.addSignalListener(sig, h);
    };
    on("SIGINT");
    on("SIGTERM");
  });
  const ended = await Promise.race([stop, daemon.wait().then(() => "")]);
  if (ended) log.info(`${ended} caught: flushing and stopping`);
  // Never hang at shutdown: a destination that does not drain within 5 s is abandoned.
  const guard = setTimeout(() => {
    log.error("shutdown took over 5 s: exiting without waiting further");
    Deno.exit(0);
  }, 5000);
  await daemon.shutdown();
  grpc.close();
  await http.shutdown();
  clearTimeout(guard);
  return 0;
}
