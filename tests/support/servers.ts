/**
 * Real servers for the tests (Debian's nats-server, redis-server…), started on free loopback
 * ports and stopped after; a component that is not installed is skipped loudly.
 *
 * @module
 */

/** Debian's nats-server. */
export const NATS = "/usr/sbin/nats-server";
/** Debian's redis-server (the Valkey/Redis protocol). */
export const REDIS = "/usr/bin/redis-server";

/** True (and says why on stderr) when `path` is missing: the tests that need it skip. */
export function missing(path: string, pkg: string): boolean {
  try {
    Deno.statSync(path);
    return false;
  } catch {
    console.error(`SKIP ${pkg} tests: ${path} missing (apt install ${pkg})`);
    return true;
  }
}

/** A server process, ready once `ready` shows in its output. */
export async function startServer(
  cmd: string,
  args: string[],
  ready: RegExp,
): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
  const out = [child.stdout, child.stderr].map((s) => s.pipeThrough(new TextDecoderStream()));
  let text = "";
  const deadline = Date.now() + 10_000;
  const readers = out.map((s) => s.getReader());
  const pump = readers.map(async (r) => {
    for (;;) {
      const { value, done } = await r.read();
      if (done) return;
      text += value;
    }
  });
  while (!ready.test(text)) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${cmd} did not start:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  void Promise.all(pump).catch(() => {});
  return child;
}

/** SIGTERM, and waits for the exit. */
export async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* exited */ }
  await child.status;
}

/** redis-server's arguments: loopback `port`, nothing persisted. */
export function redisArgs(port: number): string[] {
  return ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no"];
}
