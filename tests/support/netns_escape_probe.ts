/**
 * A thread that cannot return to its home namespace, in a process of its own (the thread ends
 * up in the wrong namespace: never in the test process). The home is `/dev/null`: a valid fd,
 * so entering a namespace works, and the setns back fails with EINVAL.
 *
 *   deno run -A tests/support/netns_escape_probe.ts socket|registry|daemon NS OTHER
 *
 * NS and OTHER are names under /run/netns. Prints one JSON object: what each step threw (class,
 * message, `fatal`, what {@link isFatal} says), how long the calls after the first failure
 * took, and which namespace the thread is in (its inode) next to the inodes of NS and OTHER.
 *
 * @module
 */
import { netnsInode } from "../../ffi/libc.ts";
import { NamespaceEscapeError, NetnsHome } from "../../ffi/netns.ts";
import { defaultConfig } from "../../src/config/load.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import { NamespaceRegistry } from "../../src/netns/registry.ts";
import { isFatal } from "../../src/util/errors.ts";
import { Counters, Logger } from "../../src/util/log.ts";

const [mode, ns, other] = Deno.args;
if (!mode || !ns || !other) throw new Error("usage: netns_escape_probe.ts MODE NS OTHER");
const nsPath = `/run/netns/${ns}`;
const otherPath = `/run/netns/${other}`;
/** The namespace inode of a bind mount (/run/netns/NAME) or of a /proc link. */
const inode = (path: string) => BigInt(Deno.statSync(path).ino ?? -1);
const realHome = netnsInode("/proc/thread-self/ns/net");
const inodes = {
  realHome: String(realHome),
  ns: String(inode(nsPath)),
  other: String(inode(otherPath)),
};
const threadNs = () => String(netnsInode("/proc/thread-self/ns/net"));

/** What a call threw, in JSON. */
function caught(fn: () => unknown): Record<string, unknown> {
  const t0 = performance.now();
  try {
    fn();
    return { threw: false };
  } catch (err) {
    const e = err as Error & { fatal?: unknown; entered?: unknown };
    return {
      threw: true,
      escape: err instanceof NamespaceEscapeError,
      name: e.name,
      message: e.message,
      fatal: e.fatal,
      isFatal: isFatal(err),
      entered: e.entered,
      ms: performance.now() - t0,
      error: err,
    };
  }
}

const lines: string[] = [];
const log = new Logger(1, (l) => lines.push(l));
const counters = new Counters();
const home = NetnsHome.open("/dev/null");
const out: Record<string, unknown> = { mode, inodes };

if (mode === "socket") {
  const first = caught(() => home.openNetlinkSocketIn(nsPath));
  out.threadAfterFirst = threadNs();
  const again = caught(() => home.openNetlinkSocketIn(otherPath));
  out.threadAfterAgain = threadNs();
  const run = caught(() => home.run(0, () => 1));
  out.sameErrorObject = first.error !== undefined && again.error === first.error &&
    run.error === first.error;
  Object.assign(out, { first, again, run });
} else if (mode === "registry") {
  using reg = new NamespaceRegistry({
    home,
    selfInode: realHome,
    rcvTimeoutMs: 1000,
    log,
    counters,
  });
  const first = caught(() => reg.reconcile());
  out.threadAfterFirst = threadNs();
  const again = caught(() => reg.reconcile());
  out.sameErrorObject = first.error !== undefined && again.error === first.error;
  out.openErrorsCounted = counters.get("netNamespaceInstance", "open", "error");
  Object.assign(out, { first, again });
} else if (mode === "daemon") {
  const cfg = defaultConfig();
  cfg.dest = "null";
  // Were the poll loop started, its first poll would come at once.
  cfg.pollJitterPct = 0;
  cfg.reconcileBeforePoll = false;
  const shutdown = new AbortController();
  const daemon = new Daemon({
    config: cfg,
    home,
    selfInode: realHome,
    log,
    counters,
    hostname: "probe",
    signal: shutdown.signal,
  });
  const t0 = performance.now();
  let rejected: Record<string, unknown> = { threw: false };
  try {
    await daemon.start();
    await Promise.race([
      daemon.wait(),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("wait() still pending")), 10_000)
      ),
    ]);
  } catch (err) {
    rejected = caught(() => {
      throw err;
    });
    rejected.ms = performance.now() - t0;
  }
  await new Promise((r) => setTimeout(r, 500)); // time for a poll, if one was started
  out.threadAfterFirst = threadNs();
  out.first = rejected;
  out.polls = lines.filter((l) => /: poll \d+: /.test(l)).length;
}
out.log = lines;
for (const k of ["first", "again", "run"]) {
  delete (out[k] as { error?: unknown } | undefined)?.error;
}
console.log(JSON.stringify(out));
// The thread may be in the wrong namespace: nothing is disposed, the process ends here.
Deno.exit(0);
