/**
 * `--changesOnly`: the per-namespace table of what each socket looked like when last written
 * (new, changed, unchanged with only tcp_info's last_* times moving, gone: swept once; left out by
 * sampling: still changed; bounded), and the daemon against real idle connections in a namespace
 * of their own: the first poll writes every socket, idle polls write none, a connection that
 * carries data is written again, a connection reset yields exactly one closed record per socket,
 * a snapshot every N polls writes them all; with and without `--pipeline`.
 */
import assert from "node:assert/strict";
import { pollSettings } from "../src/config/derive.ts";
import { defaultConfig } from "../src/config/load.ts";
import { NullDest } from "../src/dest/null.ts";
import { InPlaceDelivery } from "../src/dest/queue.ts";
import { marshaller } from "../src/format/marshal.ts";
import { SocketChanges } from "../src/poll/changes.ts";
import { Poller } from "../src/poll/poller.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { daemon, morePolls, stopDaemon } from "./support/delivery.ts";
import { type IdleConns, idleConns } from "./support/idle_conns.ts";
import { registryOver } from "./support/registry.ts";
import { socketView as socket } from "./support/synth.ts";

/** One poll of `views`: which of them changed, and the cookies swept as closed. */
function poll(
  t: SocketChanges,
  views: ReturnType<typeof socket>[],
): { changed: number[]; closed: number[] } {
  t.begin();
  const changed = views.filter((v) => t.changed(v)).map((v) => v.dv.getUint32(44, true));
  const closed: number[] = [];
  t.sweep((hdr, off) => closed.push(new DataView(hdr.buffer).getUint32(off + 44, true)));
  return { changed, closed: closed.sort((a, b) => a - b) };
}

Deno.test("change table: new and changed sockets are written, last_* times and expires ignored", () => {
  const t = new SocketChanges();
  const a = socket(1);
  const b = socket(2);
  assert.deepEqual(poll(t, [a, b]), { changed: [1, 2], closed: [] }, "new: written");
  assert.deepEqual(poll(t, [a, b]), { changed: [], closed: [] }, "idle: nothing");
  a.dv.setUint32(72 + 44, 1234, true); // tcpi_last_data_sent
  a.dv.setUint32(72 + 56, 99, true); // tcpi_last_ack_recv
  a.dv.setUint32(52, 5000, true); // idiag_expires
  assert.deepEqual(poll(t, [a, b]), { changed: [], closed: [] }, "times only: nothing");
  a.dv.setUint32(72 + 120, 7, true); // tcpi_bytes_acked
  b.u8[1] = 8; // close-wait
  assert.deepEqual(poll(t, [a, b]), { changed: [1, 2], closed: [] }, "counter and state");
  assert.deepEqual(poll(t, [b]), { changed: [], closed: [1] }, "gone: one close");
  assert.deepEqual(poll(t, [b]), { changed: [], closed: [] }, "closed once only");
  assert.deepEqual(poll(t, [a, b]), { changed: [1], closed: [] }, "back: new again");
});

Deno.test("change table: a socket left out (sampling) is still changed next time", () => {
  const t = new SocketChanges();
  const a = socket(1);
  t.begin();
  assert.ok(t.changed(a));
  t.leftOut();
  assert.deepEqual(poll(t, [a]), { changed: [1], closed: [] }, "new, left out: written next");
  a.dv.setUint32(72 + 100, 3, true); // tcpi_total_retrans
  t.begin();
  assert.ok(t.changed(a));
  t.leftOut();
  assert.deepEqual(poll(t, [a]), { changed: [1], closed: [] }, "changed, left out: written next");
  assert.deepEqual(poll(t, [a]), { changed: [], closed: [] });
});

Deno.test("change table: thousands of sockets, half gone, lookups stay right after removals", () => {
  const t = new SocketChanges();
  const cookies = Array.from({ length: 5000 }, (_, i) => (i * 2654435761) >>> 0 || 1);
  const views = cookies.map(socket);
  assert.equal(poll(t, views).changed.length, 5000);
  const kept = views.filter((_, i) => i % 2 === 0);
  const r = poll(t, kept);
  assert.deepEqual(r.changed, []);
  assert.deepEqual(r.closed, cookies.filter((_, i) => i % 2 === 1).sort((a, b) => a - b));
  assert.equal(t.count, 2500);
  assert.deepEqual(poll(t, kept), { changed: [], closed: [] }, "every kept socket still found");
  kept[1234].dv.setUint32(72 + 136, 1, true); // tcpi_segs_out
  assert.deepEqual(poll(t, kept).changed, [cookies[2468]]);
  assert.equal(poll(t, views).changed.length, 2500, "the others come back as new");
});

Deno.test("change table: bounded; sockets beyond the bound are always written, never closed", () => {
  const t = new SocketChanges(8);
  const views = Array.from({ length: 10 }, (_, i) => socket(i + 1));
  assert.equal(poll(t, views).changed.length, 10);
  assert.equal(t.count, 8);
  const r = poll(t, views);
  assert.deepEqual(r.changed, [9, 10]);
  assert.equal(t.untracked, 4);
});

interface JsonRec {
  netns: string;
  inet_diag_msg_socket_source_port: number;
  inet_diag_msg_socket_destination_port?: number;
  inet_diag_msg_socket_cookie: string;
  closed?: boolean;
}

async function recordsOf(path: string, netns: string): Promise<JsonRec[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return text.split("\n").filter((l) => l).map((l) => JSON.parse(l) as JsonRec).filter((r) =>
    r.netns === netns
  );
}

/** `fn` with `n` idle connections and the path of a jsonl output file, both removed after. */
async function withIdle(
  n: number,
  fn: (conns: IdleConns, out: string) => Promise<void>,
): Promise<void> {
  await using conns = await idleConns(n);
  const dir = await Deno.makeTempDir({ prefix: "xtcp2-changes-" });
  try {
    await fn(conns, `${dir}/out.jsonl`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The records of connection `port` (client port): its client and server sockets. */
const ofConn = (recs: JsonRec[], port: number) =>
  recs.filter((r) =>
    r.inet_diag_msg_socket_source_port === port || r.inet_diag_msg_socket_destination_port === port
  );

for (const mode of [[], ["-pipeline"]]) {
  Deno.test({
    name: `--changesOnly${
      mode.length ? " " + mode.join(" ") : ""
    }: idle sockets cost nothing, data rewrites a connection, a reset closes it once`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () =>
      withIdle(4, async (conns, out) => {
        const d = daemon(`file:${out}`, "jsonl", ["-changesOnly", ...mode], conns.netns);
        try {
          await morePolls(d, 2);
          const first = await recordsOf(out, conns.netns);
          assert.equal(first.length, 9, "first poll: a listener and 4 connections, once each");
          assert.ok(first.every((r) => !r.closed));
          await morePolls(d, 2);
          assert.equal((await recordsOf(out, conns.netns)).length, 9, "idle polls write nothing");
          const [busy, gone] = [conns.conns[0][0], conns.conns[1][0]];
          await conns.send(0);
          await conns.reset(1);
          await morePolls(d, 3);
          const after = (await recordsOf(out, conns.netns)).slice(9);
          const closed = after.filter((r) => r.closed);
          assert.equal(closed.length, 2, `one closed record per socket: ${JSON.stringify(after)}`);
          assert.deepEqual(ofConn(closed, gone).length, 2, "the reset connection's two sockets");
          assert.equal(ofConn(after, gone).length, 2, "nothing else of it");
          assert.ok(ofConn(after, busy).length >= 2, "the busy connection's sockets again");
          assert.equal(
            after.length,
            closed.length + ofConn(after, busy).length,
            "nothing of the idle ones",
          );
          const cookies = new Set(closed.map((r) => r.inet_diag_msg_socket_cookie));
          assert.equal(cookies.size, 2);
          assert.ok(
            first.filter((r) => cookies.has(r.inet_diag_msg_socket_cookie)).length === 2,
            "closed records carry the cookies the sockets had",
          );
        } finally {
          await stopDaemon(d);
        }
      }),
  });
}

Deno.test({
  name: "--changesOnly --snapshotEvery 2: every other poll writes every socket",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withIdle(2, async (conns, out) => {
      const d = daemon(`file:${out}`, "jsonl", [
        "-changesOnly",
        "-snapshotEvery",
        "2",
        "-maxLoops",
        "5",
      ], conns.netns);
      const status = await d.child.status;
      await d.drained;
      assert.equal(status.code, 0, d.log());
      // Polls 1, 3 and 5 are snapshots (loops 0, 2, 4); 2 and 4 write nothing of the idle ones.
      assert.equal((await recordsOf(out, conns.netns)).length, 3 * 5);
    }),
});

Deno.test({
  name: "--changesOnly: a namespace's table goes when the namespace does",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using a = await idleConns(2);
    await using b = await idleConns(3);
    const counters = new Counters();
    const log = new Logger(0);
    using registry = registryOver([a.netns, b.netns], log, counters);
    const cfg = defaultConfig();
    cfg.dest = "null";
    cfg.changesOnly = true;
    using poller = new Poller({
      settings: pollSettings(cfg, { hostname: "h", version: "t" }),
      registry,
      delivery: new InPlaceDelivery(new NullDest(), "message", counters, log),
      marshaller: marshaller(cfg.marshalTo),
      log,
      counters,
    });
    await poller.pollOnce();
    assert.deepEqual(poller.changeState, { namespaces: 2, sockets: 5 + 7 });
    const [first] = [...registry.states.keys()];
    registry.states.get(first!)?.socket.close();
    registry.states.delete(first!);
    await poller.pollOnce();
    assert.deepEqual(poller.changeState, { namespaces: 1, sockets: 7 });
  },
});
