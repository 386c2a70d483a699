/**
 * No destination can block the daemon's event loop. The real daemon polls every second a
 * namespace of 2,000 loopback connections into a receiver that never reads: a unixgram socket
 * (sends never wait: a full receiver queue is a counted drop) and a unix stream listener that
 * accepts and never reads (writes have a deadline and sit behind the delivery queue). Throughout,
 * polls keep their cadence (about one a second, none overran) and /metrics answers within a
 * second; what could not be delivered is counted.
 */
import assert from "node:assert/strict";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, sysBind, sysClose, sysSocket } from "../ffi/libc.ts";
import { sockaddrUn } from "../ffi/unix_dgram.ts";
import { type DaemonProc, sample, scrape, startDaemon } from "./support/daemon.ts";
import { EVERY_SECOND, until } from "./support/run.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";

const CONNS = 2000;
/** How long the daemon is watched once the receiver is full. */
const WATCH_MS = 12_000;

/** The daemon polling every second (no jitter) into `dest`. */
function pollingInto(dest: string): DaemonProc {
  return startDaemon([
    ...EVERY_SECOND,
    "-dest",
    dest,
    "-marshal",
    "protobufList",
  ]);
}

/** `poll N:` lines of the daemon, with when they arrived. */
function polls(d: DaemonProc): { at: number; n: number; sockets: number }[] {
  const out = [];
  for (const l of d.lines) {
    const m = /xtcp2: poll (\d+): \d+ namespaces, (\d+) sockets/.exec(l.text);
    if (m) out.push({ at: l.at, n: Number(m[1]), sockets: Number(m[2]) });
  }
  return out;
}

/**
 * Watches the daemon for {@link WATCH_MS}: /metrics scraped every 250 ms (each answer timed);
 * then checks the cadence of the polls made meanwhile. Returns the last scrape.
 */
async function assertResponsive(d: DaemonProc, load: { netns: string }): Promise<string> {
  const t0 = performance.now();
  const slow: string[] = [];
  let last = "";
  let scrapes = 0;
  while (performance.now() - t0 < WATCH_MS) {
    const at = performance.now() - t0;
    try {
      const m = await scrape(d.httpPort, 5000);
      assert.equal(m.status, 200);
      scrapes++;
      last = m.text;
      if (m.ms >= 1000) slow.push(`${m.ms.toFixed(0)} ms at ${at.toFixed(0)} ms`);
    } catch (err) {
      slow.push(`no answer within 5 s at ${at.toFixed(0)} ms: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.deepEqual(slow, [], `/metrics slow or silent (${scrapes} answers):\n${d.log()}`);
  const during = polls(d).filter((p) => p.at >= t0);
  assert.ok(
    during.length >= WATCH_MS / 1000 - 3,
    `${during.length} polls in ${WATCH_MS} ms:\n${d.log()}`,
  );
  const gaps = during.slice(1).map((p, i) => p.at - (during[i]?.at ?? 0));
  assert.ok(
    gaps.every((g) => g > 400 && g < 2000),
    `gaps between polls ${gaps.map((g) => g.toFixed(0)).join(", ")} ms`,
  );
  assert.doesNotMatch(d.log(), /overran the interval/);
  assert.ok(
    during.every((p) => p.sockets >= 2 * CONNS),
    `every poll has the load of ${load.netns}`,
  );
  return last;
}

Deno.test({
  name:
    "unixgram: a receiver that never reads costs counted drops, never the event loop (polls every second, /metrics within 1 s)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: CONNS, bytes: 10 });
    const dir = Deno.makeTempDirSync({ prefix: "xtcp2_nonblocking_" });
    const path = `${dir}/never-reads.sock`;
    const receiver = sysSocket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    try {
      sysBind(receiver, sockaddrUn(path));
      await using d = pollingInto(`unixgram:${path}`);
      const drops = async () =>
        sample(
          (await scrape(d.httpPort).catch(() => ({ text: "" }))).text,
          "xtcp_counts",
          'function="unixgram",variable="queueFull",type="drop"',
        );
      await until("the receiver's queue full: drops counted", async () => (await drops()) > 0);
      const text = await assertResponsive(d, load);
      const dropped = sample(
        text,
        "xtcp_counts",
        'function="unixgram",variable="queueFull",type="drop"',
      );
      const sent = sample(
        text,
        "xtcp_counts",
        'function="unixgram",variable="Writes",type="count"',
      );
      assert.ok(dropped > 10, `${dropped} datagrams dropped`);
      assert.ok(sent > 0 && sent < dropped, `${sent} sent, ${dropped} dropped`);
      assert.ok(
        sample(text, "xtcp_counts", 'function="unixgram",variable="queueFullBytes",type="drop"') >
          dropped,
        "the dropped bytes are counted too",
      );
      const { code } = await d.stop();
      assert.equal(code, 0, d.log());
    } finally {
      sysClose(receiver);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "unix stream: a receiver that accepts and never reads holds no poll back (writes time out behind the delivery queue)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: CONNS, bytes: 10 });
    const dir = Deno.makeTempDirSync({ prefix: "xtcp2_nonblocking_" });
    const path = `${dir}/never-reads.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of listener) held.push(c); // accepted, never read
    })().catch(() => {});
    try {
      await using d = pollingInto(`unix:${path}`);
      await until("a connection accepted", () => held.length > 0);
      const text = await assertResponsive(d, load);
      // The kernel's buffers filled long ago: a write waited out its deadline (5 s) and failed,
      // the envelope stayed queued, and the queue retries while the polls go on.
      assert.ok(
        sample(text, "xtcp_counts", 'function="unix",variable="Writes",type="error"') >= 1,
        d.log(),
      );
      assert.ok(
        sample(text, "xtcp_counts", 'function="destQueue",variable="retries",type="count"') >= 1,
        d.log(),
      );
      assert.match(d.log(), /unix: send failed, retrying with backoff/);
      const { code } = await d.stop();
      assert.equal(code, 0, d.log());
    } finally {
      listener.close();
      await accepting;
      for (const c of held) c.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
