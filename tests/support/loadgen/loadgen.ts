/**
 * Load generator: a network namespace holding N established loopback TCP connections (IPv4 and
 * IPv6, some bytes each way), spread over several worker processes because of the per-process
 * open-file limit (~20,000 here; each connection costs 2 fds when both ends live in one process).
 *
 *   deno run -A tests/support/loadgen/loadgen.ts --conns 10000 [--netns NAME] [--ipv6Fraction 0.5] [--bytes 100] [--namespaces K]
 *
 * @module
 */
import { parseArgs } from "node:util";

/** Options of {@link startLoad}. */
export interface LoadOptions {
  /** Namespace name (under /run/netns); created if missing, and then deleted by close(). */
  netns?: string;
  /** Established connections (2 sockets each). */
  conns: number;
  /** Fraction of connections over ::1 (the rest over 127.0.0.1); default 0.5. */
  ipv6Fraction?: number;
  /** Bytes each side sends once; default 100. */
  bytes?: number;
  /** Connections per worker process; default 8000. */
  perProcess?: number;
  /**
   * IPv4 addresses the listeners bind and the connections go to, round robin (default
   * 127.0.0.1); those not in 127.0.0.0/8 are added to the namespace's lo first.
   */
  hosts4?: string[];
  /** The same for IPv6 (default ::1); others are added to lo (nodad). */
  hosts6?: string[];
}

/** A running load. */
export interface Load extends AsyncDisposable {
  /** Namespace name. */
  netns: string;
  /** `/run/netns/<name>`. */
  nsPath: string;
  /** Established connections. */
  conns: number;
  /** Listening sockets. */
  listeners: number;
  /** Worker pids. */
  pids: number[];
  /** Stops the workers and deletes the namespace if it was created here. */
  close(): Promise<void>;
}

const WORKER = new URL("./loadgen_worker.ts", import.meta.url).pathname;

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

function nsExists(name: string): boolean {
  try {
    Deno.statSync(`/run/netns/${name}`);
    return true;
  } catch {
    return false;
  }
}

interface Worker {
  child: Deno.ChildProcess;
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  stderr: Promise<string>;
}

async function waitReady(w: Worker, timeoutMs: number): Promise<number> {
  const reader = w.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`worker not ready after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    for (;;) {
      const r = await Promise.race([reader.read(), timeout]);
      if (r.done) throw new Error(`worker exited before ready: ${await w.stderr}`);
      text += r.value;
      const m = /ready (\d+) (\d+)/.exec(text);
      if (m) return Number(m[2]);
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

/**
 * Starts a load in a namespace.
 *
 * @example
 * ```ts
 * await using load = await startLoad({ conns: 1000 });
 * console.log(load.nsPath);
 * ```
 */
export async function startLoad(opts: LoadOptions): Promise<Load> {
  const name = opts.netns ?? `xtcp2-load-${crypto.randomUUID().slice(0, 8)}`;
  const created = !nsExists(name);
  const workers: Worker[] = [];
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const w of workers) {
      await w.stdin.close().catch(() => {});
    }
    for (const w of workers) {
      const t = setTimeout(() => {
        try {
          w.child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5000);
      await w.child.status;
      clearTimeout(t);
      await w.child.stdout.cancel().catch(() => {});
      await w.stderr.catch(() => "");
    }
    if (created && nsExists(name)) await run("ip", ["netns", "del", name]);
  };
  try {
    if (created) await run("ip", ["netns", "add", name]);
    await run("ip", ["-n", name, "link", "set", "lo", "up"]);
    for (const h of opts.hosts4 ?? []) {
      if (!h.startsWith("127.")) {
        await run("ip", ["-n", name, "addr", "add", `${h}/32`, "dev", "lo"]);
      }
    }
    for (const h of opts.hosts6 ?? []) {
      if (h !== "::1") {
        await run("ip", ["-n", name, "addr", "add", `${h}/128`, "dev", "lo", "nodad"]);
      }
    }
    await run("ip", [
      "netns",
      "exec",
      name,
      "sysctl",
      "-q",
      "-w",
      "net.ipv4.ip_local_port_range=1024 65000",
      // The listeners' ports (from 20000): never handed out as a client's ephemeral port, or a
      // worker that binds late finds its port taken; nor the daemon's default gRPC and HTTP
      // ports, for a daemon run inside the load's namespace.
      "net.ipv4.ip_local_reserved_ports=8889,9088,20000-20999",
    ]);
    const per = opts.perProcess ?? 8000;
    let left = opts.conns;
    let basePort = 20000;
    let listeners = 0;
    const starting: Promise<number>[] = [];
    while (left > 0) {
      const n = Math.min(per, left);
      left -= n;
      const perFamily = Math.ceil(n / 20000) + 1;
      const child = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          name,
          Deno.execPath(),
          "run",
          "--quiet",
          "--allow-net",
          WORKER,
          "--conns",
          String(n),
          "--v6",
          String(opts.ipv6Fraction ?? 0.5),
          "--bytes",
          String(opts.bytes ?? 100),
          "--basePort",
          String(basePort),
          "--listeners",
          String(perFamily),
          "--hosts4",
          (opts.hosts4 ?? ["127.0.0.1"]).join(","),
          "--hosts6",
          (opts.hosts6 ?? ["::1"]).join(","),
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      basePort += 2 * perFamily;
      const stderr = new Response(child.stderr).text();
      const w: Worker = { child, stdin: child.stdin.getWriter(), stderr };
      workers.push(w);
      starting.push(waitReady(w, 60_000));
    }
    for (const l of await Promise.all(starting)) listeners += l;
    return {
      netns: name,
      nsPath: `/run/netns/${name}`,
      conns: opts.conns,
      listeners,
      pids: workers.map((w) => w.child.pid),
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

const NS_WORKER = new URL("./loadgen_ns_worker.ts", import.meta.url).pathname;

/** Many namespaces with a few connections each, held by a few processes. */
export interface ManyLoads extends AsyncDisposable {
  /** Namespace names. */
  names: string[];
  /** Connections in each namespace. */
  connsEach: number;
  /** Listening sockets in all. */
  listeners: number;
  /** Stops the workers and deletes the namespaces. */
  close(): Promise<void>;
}

/**
 * K namespaces × `conns` established loopback connections each (IPv4 and IPv6), created by
 * worker processes that enter each namespace in turn (setns), spread so that no process holds
 * more than ~18,000 sockets. Far lighter than {@link startNamespaces} for hundreds of namespaces.
 */
export async function startManyNamespaces(
  k: number,
  opts: { conns: number; bytes?: number },
): Promise<ManyLoads> {
  const prefix = `xtcp2-many-${crypto.randomUUID().slice(0, 6)}`;
  const names = Array.from({ length: k }, (_, i) => `${prefix}-${i}`);
  const workers: Worker[] = [];
  const made: string[] = [];
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const w of workers) await w.stdin.close().catch(() => {});
    for (const w of workers) {
      await w.child.status;
      await w.child.stdout.cancel().catch(() => {});
      await w.stderr.catch(() => "");
    }
    for (let i = 0; i < made.length; i += 50) {
      await Promise.all(made.slice(i, i + 50).map((n) => run("ip", ["netns", "del", n])));
    }
  };
  try {
    for (let i = 0; i < names.length; i += 50) {
      const batch = names.slice(i, i + 50);
      await Promise.all(batch.map(async (n) => {
        await run("ip", ["netns", "add", n]);
        made.push(n);
        await run("ip", ["-n", n, "link", "set", "lo", "up"]);
      }));
    }
    const perProcess = Math.max(1, Math.floor(18_000 / (2 * opts.conns + 2)));
    const starting: Promise<number>[] = [];
    for (let i = 0; i < names.length; i += perProcess) {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--allow-ffi",
          "--allow-read",
          NS_WORKER,
          "--ns",
          names.slice(i, i + perProcess).join(","),
          "--conns",
          String(opts.conns),
          "--bytes",
          String(opts.bytes ?? 100),
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w: Worker = {
        child,
        stdin: child.stdin.getWriter(),
        stderr: new Response(child.stderr).text(),
      };
      workers.push(w);
      starting.push(waitReady(w, 120_000));
    }
    let listeners = 0;
    for (const l of await Promise.all(starting)) listeners += l;
    return { names, connsEach: opts.conns, listeners, close, [Symbol.asyncDispose]: close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** K namespaces, each with the same load. */
export async function startNamespaces(
  k: number,
  opts: Omit<LoadOptions, "netns">,
): Promise<Load[]> {
  const loads: Load[] = [];
  try {
    for (let i = 0; i < k; i++) loads.push(await startLoad(opts));
    return loads;
  } catch (err) {
    for (const l of loads) await l.close();
    throw err;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      conns: { type: "string", default: "1000" },
      netns: { type: "string" },
      ipv6Fraction: { type: "string", default: "0.5" },
      bytes: { type: "string", default: "100" },
      namespaces: { type: "string", default: "1" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(
      "usage: loadgen.ts --conns N [--netns NAME] [--ipv6Fraction 0.5] [--bytes 100] [--namespaces K]\n" +
        "Holds N established loopback connections per namespace until Ctrl-C / SIGTERM.",
    );
    Deno.exit(0);
  }
  const opts = {
    conns: Number(values.conns),
    ipv6Fraction: Number(values.ipv6Fraction),
    bytes: Number(values.bytes),
  };
  const k = Number(values.namespaces);
  // Several namespaces of a few thousand connections: a few processes entering each in turn;
  // otherwise worker processes inside each namespace (many per namespace for large N).
  const closers: (() => Promise<void>)[] = [];
  if (k > 1 && opts.conns <= 4000) {
    const many = await startManyNamespaces(k, opts);
    closers.push(() => many.close());
    console.log(`${k} namespaces × ${opts.conns} connections: ${many.names.join(" ")}`);
  } else {
    const loads = k === 1
      ? [await startLoad({ ...opts, ...(values.netns ? { netns: values.netns } : {}) })]
      : await startNamespaces(k, opts);
    for (const l of loads) {
      closers.push(() => l.close());
      console.log(`${l.netns} ${l.conns} connections, ${l.listeners} listeners`);
    }
  }
  const stop = async () => {
    for (const c of closers) await c();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
