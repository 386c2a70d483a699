/**
 * A namespace of its own holding idle loopback connections of one Python process
 * (idle_conns.py): a known owner (pid, command `python3`) and sockets that change only when told
 * (`send`) or vanish at once (`reset`: an RST, no time-wait).
 *
 * @module
 */
/** The Python script (`python3 idle_conns.py N [HELLO_FILE]`). */
export const IDLE_CONNS_PY = new URL("./idle_conns.py", import.meta.url).pathname;

/** What idle_conns.py says first. */
export interface IdleHello {
  /** Its pid (as its PID namespace sees it). */
  pid: number;
  /** The listener's port. */
  listen: number;
  /** [client port, server port] of each connection. */
  conns: [number, number][];
}

/** Runs `ip ARGS…`; throws with its stderr when it fails. */
export async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  if (!out.success) throw new Error(`ip ${args.join(" ")}: ${text.decode(out.stderr).trim()}`);
  return text.decode(out.stdout);
}

/** A new namespace (loopback up) named `xtcp2-<what>-<random>`; returns its name. */
export async function newNetns(what: string): Promise<string> {
  const netns = `xtcp2-${what}-${crypto.randomUUID().slice(0, 8)}`;
  await ip("netns", "add", netns);
  try {
    await ip("-n", netns, "link", "set", "lo", "up");
  } catch (err) {
    await ip("netns", "del", netns);
    throw err;
  }
  return netns;
}

/** The running process and its namespace. */
export interface IdleConns extends AsyncDisposable, IdleHello {
  /** Namespace name (under /run/netns). */
  netns: string;
  /** 16 bytes each way on connection `i`. */
  send(i: number): Promise<void>;
  /** Both ends of connection `i` closed with an RST. */
  reset(i: number): Promise<void>;
}

/**
 * `n` idle connections (and their listener) in a new namespace; disposing stops the process and
 * deletes the namespace.
 */
export async function idleConns(n: number): Promise<IdleConns> {
  const netns = await newNetns("idle");
  let child: Deno.ChildProcess | undefined;
  const cleanup = async () => {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
    }
    await ip("netns", "del", netns);
  };
  try {
    child = new Deno.Command("ip", {
      args: ["netns", "exec", netns, "python3", IDLE_CONNS_PY, String(n)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    const line = async (): Promise<string> => {
      for (;;) {
        const nl = buffered.indexOf("\n");
        if (nl >= 0) {
          const l = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          return l;
        }
        const r = await lines.read();
        if (r.done) throw new Error(`idle_conns.py exited; it wrote: ${buffered}`);
        buffered += r.value;
      }
    };
    const hello = JSON.parse(await line()) as IdleHello;
    const stdin = child.stdin.getWriter();
    const ask = async (what: string, i: number) => {
      await stdin.write(new TextEncoder().encode(`${what} ${i}\n`));
      const answer = await line();
      if (answer !== `${what} ${i}`) throw new Error(`idle_conns.py: ${what} ${i}: ${answer}`);
    };
    return {
      netns,
      ...hello,
      send: (i) => ask("send", i),
      reset: (i) => ask("reset", i),
      [Symbol.asyncDispose]: async () => {
        await stdin.close().catch(() => {});
        lines.cancel().catch(() => {});
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
