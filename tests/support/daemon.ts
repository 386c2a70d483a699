/**
 * The real daemon as a subprocess with its HTTP API on a free loopback port: its stderr as it
 * comes, its /metrics, and a stop that says how it ended.
 *
 * @module
 */
import { freePort, spawnXtcp2 } from "./run.ts";

/** A running daemon. */
export interface DaemonProc extends AsyncDisposable {
  child: Deno.ChildProcess;
  /** Port of /metrics, /healthz, /readyz. */
  httpPort: number;
  /** Everything written to stderr so far. */
  log(): string;
  /** Lines of stderr, each with the performance.now() (ms) at which it arrived. */
  lines: { at: number; text: string }[];
  /** Sends `signal` (default SIGTERM) and waits for the exit; the status and how long it took. */
  stop(signal?: Deno.Signal): Promise<{ code: number; ms: number }>;
}

/** Starts `xtcp2 args…` with `-promListen` and `-grpcPort` on free loopback ports. */
export function startDaemon(args: string[], opts: { netns?: string } = {}): DaemonProc {
  const httpPort = freePort();
  const child = spawnXtcp2([
    ...args,
    "-promListen",
    `127.0.0.1:${httpPort}`,
    "-grpcPort",
    String(freePort()),
  ], opts.netns ? { netns: opts.netns } : {});
  let text = "";
  let partial = "";
  const lines: { at: number; text: string }[] = [];
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      const at = performance.now();
      for (const p of parts) lines.push({ at, text: p });
    }
  })().catch(() => {});
  void child.stdout.cancel();
  let ended: Promise<{ code: number; ms: number }> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    ended ??= (async () => {
      const t0 = performance.now();
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      const status = await child.status;
      await reading;
      return { code: status.code, ms: performance.now() - t0 };
    })();
    return ended;
  };
  return {
    child,
    httpPort,
    log: () => text,
    lines,
    stop,
    async [Symbol.asyncDispose]() {
      // Never left running: SIGTERM, and SIGKILL if it has not ended 10 s later.
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, 10_000);
      try {
        await stop();
      } finally {
        clearTimeout(t);
      }
    },
  };
}

/** GET /metrics; the text, the status and how long the answer took (ms). */
export async function scrape(
  port: number,
  timeoutMs = 10_000,
): Promise<{ status: number; text: string; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, text, ms: performance.now() - t0 };
}

/** Value of one exposition sample, e.g. `xtcp_counts` with `function="destFile",…` (0 if absent). */
export function sample(text: string, name: string, labels: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{${labels}}`)) return Number(line.split(" ").at(-1));
  }
  return 0;
}

/** Where Debian's prometheus package puts promtool. */
export const PROMTOOL = "/usr/bin/promtool";

/** `promtool check metrics` on an exposition: its exit code and its findings, one per line. */
export async function promtoolCheck(text: string): Promise<{ code: number; findings: string[] }> {
  const child = new Deno.Command(PROMTOOL, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  const findings = (dec.decode(out.stdout) + dec.decode(out.stderr)).split("\n").filter((l) => l);
  return { code: out.code, findings };
}
