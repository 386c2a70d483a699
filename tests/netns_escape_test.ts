/**
 * A thread that cannot return to its home network namespace stops everything: the home is
 * opened once, a failed setns back is a fatal NamespaceEscapeError naming the namespace entered,
 * it propagates out of the namespace registry and the Daemon (never caught and logged as one
 * more namespace that could not be entered), every later call fails at once without entering
 * anything, and the real daemon exits 1 saying which namespace it is stuck in.
 *
 * The thread ends up in the wrong namespace, so each case runs in a process of its own: the
 * probe (tests/support/netns_escape_probe.ts, home `/dev/null`: entering works, the setns back
 * fails with EINVAL), and the real daemon started with its thread's namespace directory
 * (/proc/PID/task/PID/ns) covered by a bind mount in a private mount namespace, so that
 * `/proc/thread-self/ns/net` is an empty file and every setns to it fails with EINVAL.
 */
import assert from "node:assert/strict";
import { xtcp2Argv } from "./support/run.ts";

const PROBE = new URL("./support/netns_escape_probe.ts", import.meta.url).pathname;

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Two fresh namespaces under /run/netns, deleted when disposed. */
async function twoNamespaces(): Promise<AsyncDisposable & { ns: string; other: string }> {
  const id = crypto.randomUUID().slice(0, 8);
  const ns = `xtcp2-escape-${id}-a`;
  const other = `xtcp2-escape-${id}-b`;
  await sh("ip", "netns", "add", ns);
  await sh("ip", "netns", "add", other);
  return {
    ns,
    other,
    async [Symbol.asyncDispose]() {
      await sh("ip", "netns", "del", ns).catch(() => {});
      await sh("ip", "netns", "del", other).catch(() => {});
    },
  };
}

interface Caught {
  threw: boolean;
  escape?: boolean;
  name?: string;
  message?: string;
  fatal?: unknown;
  isFatal?: boolean;
  entered?: string;
  ms?: number;
}

interface ProbeResult {
  inodes: { realHome: string; ns: string; other: string };
  threadAfterFirst: string;
  threadAfterAgain?: string;
  sameErrorObject?: boolean;
  openErrorsCounted?: number;
  first: Caught;
  again?: Caught;
  run?: Caught;
  polls?: number;
  log: string[];
}

async function probe(mode: string, ns: string, other: string): Promise<ProbeResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "-A", PROBE, mode, ns, other],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `probe ${mode} failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The error every case must end with: fatal, classified fatal, naming `entered`. */
function assertEscape(c: Caught | undefined, what: string): string {
  assert.ok(c?.threw, `${what}: nothing thrown`);
  assert.equal(c.name, "NamespaceEscapeError", `${what}: ${c.message}`);
  assert.equal(c.escape, true, what);
  assert.equal(c.fatal, true, what);
  assert.equal(c.isFatal, true, what);
  assert.ok(c.entered, what);
  assert.ok(
    c.message?.startsWith(
      `Cannot return to the daemon's own network namespace after entering ${c.entered}: ` +
        "the thread is stuck there: setns failed: EINVAL",
    ),
    `${what}: ${c.message}`,
  );
  return c.entered;
}

Deno.test({
  name:
    "openNetlinkSocketIn: a failed return home is a fatal NamespaceEscapeError naming the namespace; later calls fail at once without entering",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using t = await twoNamespaces();
    const r = await probe("socket", t.ns, t.other);
    assert.equal(assertEscape(r.first, "first call"), `/run/netns/${t.ns}`);
    assert.equal(
      r.threadAfterFirst,
      r.inodes.ns,
      "the thread is stuck in the namespace it entered",
    );
    // The same error again, for another namespace and for run(): nothing was entered.
    assertEscape(r.again, "second call");
    assertEscape(r.run, "run()");
    assert.equal(r.again?.entered, `/run/netns/${t.ns}`);
    assert.equal(r.sameErrorObject, true, "every later call throws the first error");
    assert.equal(r.threadAfterAgain, r.inodes.ns, "the second call did not enter the other one");
    assert.notEqual(r.threadAfterAgain, r.inodes.other);
    assert.ok((r.again?.ms ?? Infinity) < 50, `the second call took ${r.again?.ms} ms`);
  },
});

Deno.test({
  name:
    "NamespaceRegistry.reconcile throws the fatal error (not logged and counted as a namespace that could not be entered), and again at once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using t = await twoNamespaces();
    const r = await probe("registry", t.ns, t.other);
    const entered = assertEscape(r.first, "reconcile");
    assert.match(entered, /^\/(run\/netns|run\/docker\/netns|proc\/\d+\/ns)\//);
    assert.notEqual(r.threadAfterFirst, r.inodes.realHome, "the thread left home and is stuck");
    assertEscape(r.again, "second reconcile");
    assert.equal(r.sameErrorObject, true);
    assert.equal(r.openErrorsCounted, 0, "not counted as a namespace that could not be entered");
    assert.deepEqual(r.log.filter((l) => /Cannot enter namespace/i.test(l)), []);
  },
});

Deno.test({
  name: "Daemon: wait() rejects with the fatal error naming the namespace, and no poll loop starts",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using t = await twoNamespaces();
    const r = await probe("daemon", t.ns, t.other);
    const entered = assertEscape(r.first, "Daemon.wait()");
    assert.ok((r.first.ms ?? Infinity) < 5000, `wait() rejected after ${r.first.ms} ms`);
    assert.ok(r.log.some((l) => l.includes(entered)), r.log.join("\n"));
    assert.equal(r.polls, 0, `polled on a thread stuck in ${entered}:\n${r.log.join("\n")}`);
    assert.deepEqual(r.log.filter((l) => /: started: /.test(l)), [], "nothing is said started");
  },
});

Deno.test({
  name:
    "the real daemon whose thread cannot return home exits 1 at once, naming the namespace it is stuck in",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using _namespaces = await twoNamespaces(); // at least two to enter
    const fake = Deno.makeTempDirSync({ prefix: "xtcp2_fake_ns_" });
    try {
      Deno.writeFileSync(`${fake}/net`, new Uint8Array()); // an empty file where ns/net was
      const argv = xtcp2Argv(["-dest", "null", "-frequency", "1s", "-timeout", "900ms"]);
      // In a private mount namespace: cover this shell's thread's ns directory (the PID stays
      // the daemon's across exec, and Deno runs JS on the main thread, whose TID is the PID).
      const child = new Deno.Command("unshare", {
        args: [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          'mount --bind "$0" /proc/$$/task/$$/ns && exec "$@"',
          fake,
          ...argv,
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const t0 = performance.now();
      const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()])
        .finally(() => clearTimeout(timer));
      const ms = performance.now() - t0;
      assert.equal(status.signal, null, `still running after 20 s:\n${stderr}`);
      assert.equal(status.code, 1, stderr);
      assert.ok(ms < 15_000, `exited after ${ms} ms`);
      const m =
        /xtcp2: error: Cannot return to the daemon's own network namespace after entering (\S+): the thread is stuck there: setns failed: EINVAL/
          .exec(stderr);
      assert.ok(m, stderr);
      assert.doesNotMatch(stderr, /: poll \d+: /, "no poll on a stuck thread");
      assert.doesNotMatch(stderr, /Cannot enter namespace/i, "not taken for one bad namespace");
    } finally {
      Deno.removeSync(fake, { recursive: true });
    }
  },
});
