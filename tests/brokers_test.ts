/**
 * Broker destinations against real servers on loopback (Debian's nats-server and redis-server,
 * librdkafka's mock Kafka broker, a real unix-socket receiver; for NSQ, of which no server can be
 * installed here, a stub of nsqd's TCP protocol), started here on free ports and stopped after.
 * The daemon refuses to start without its broker. At 1 s polls, the broker goes away for 10 s
 * and comes back: nothing is lost — every row the daemon's poll log says it collected reaches the
 * consumer, because flushes wait in the delivery queue and are retried until acknowledged. An
 * outage longer than the queue: rows received + rows counted as dropped = rows collected,
 * exactly. With a spool, a daemon killed during an outage sends what it spooled after a restart.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { fromBinary } from "@bufbuild/protobuf";
import { connect as natsConnect, type NatsConnection } from "nats";
import { Redis } from "ioredis";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { readVarint } from "../src/util/varint.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { freeListenArgs, freePort, until, xtcp2 } from "./support/run.ts";
import {
  collected,
  daemon as isolated,
  polls,
  type RunningDaemon,
  stopDaemon,
} from "./support/delivery.ts";
import { unframe } from "./support/records.ts";
import { quietKafkajsTimers } from "../src/dest/kafka.ts";
import { RDKAFKA, startMockKafka } from "./support/kafka_mock.ts";
import { missing, NATS, REDIS, redisArgs, startServer, stop } from "./support/servers.ts";

const OUTAGE_MS = 10_000;

/** Rows of one protobufList message. */
function rowCount(msg: Uint8Array): number {
  return fromBinary(EnvelopeSchema, unframe(msg)).row.length;
}

/**
 * The daemon polling every second into `dest` on `topic`, seeing only the test's namespace
 * `netns` besides its own (other tests' and benchmarks' namespaces stay out of its counts).
 */
function daemon(dest: string, topic: string, netns: string, extra: string[] = []) {
  const httpPort = freePort();
  const d = isolated(dest, "protobufList", [
    "-topic",
    topic,
    "-promListen",
    `127.0.0.1:${httpPort}`,
    ...extra,
  ], netns);
  const signal = async (sig: Deno.Signal) => Deno.kill(await d.pid(), sig);
  return { ...d, httpPort, signal };
}

/** Rows the daemon's closing account says were dropped. */
function dropped(log: string): number {
  const m = /delivery to \S+: \d+ rows handed over, \d+ acknowledged, (\d+) dropped/.exec(log);
  assert.ok(m, `no delivery account in the log:\n${log}`);
  return Number(m[1]);
}

const KCAT = "/usr/bin/kcat";

/** Every record of a topic, read by kcat (librdkafka) from the start: a row counter. */
async function kcatRows(bootstrap: string, topic: string): Promise<() => number> {
  const out = await new Deno.Command(KCAT, {
    args: ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  // The values, one protobufList message each, back to back.
  let rows = 0;
  for (let at = 0; at < out.stdout.length;) {
    const [len, body] = readVarint(out.stdout, at);
    rows += rowCount(out.stdout.subarray(at, body + len));
    at = body + len;
  }
  return () => rows;
}

/**
 * Runs the daemon into `dest`, takes the broker away (`down`) for `outageMs` and brings it back
 * (`up`), lets it deliver, stops it with SIGTERM, and returns what it logged.
 */
async function outage(
  d: RunningDaemon,
  received: () => number,
  down: () => Promise<void>,
  up: () => Promise<void>,
  outageMs = OUTAGE_MS,
): Promise<string> {
  await until("rows delivered before the outage", () => received() > 0 && polls(d.log()) >= 2);
  await down();
  const seen = polls(d.log());
  await new Promise((r) => setTimeout(r, outageMs));
  assert.ok(polls(d.log()) >= seen + outageMs / 1000 - 2, `polls went on:\n${d.log()}`);
  await up();
  await until(
    "delivery again after the outage",
    () => /delivering again after/.test(d.log()),
    40_000,
  );
  const back = polls(d.log());
  await until("two more polls", () => polls(d.log()) >= back + 2, 20_000);
  return await stopDaemon(d);
}

/** After `log`'s run: the consumer gets exactly what was collected, less what was dropped. */
async function accounted(log: string, received: () => number, what: string): Promise<void> {
  const want = collected(log) - dropped(log);
  await until(`${what}: ${want} rows received`, () => received() >= want, 20_000).catch((err) => {
    throw new Error(`${(err as Error).message} (${received()} so far)\n${log}`);
  });
  await new Promise((r) => setTimeout(r, 500)); // nothing more arrives
  assert.equal(received(), want, `${what}: rows received = collected - dropped\n${log}`);
}

/** A NATS subscriber that survives the server going away and reconnects at once. */
async function natsCounter(port: number, subject: string) {
  let rows = 0;
  const nc: NatsConnection = await natsConnect({
    servers: `127.0.0.1:${port}`,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  const sub = nc.subscribe(subject);
  (async () => {
    for await (const m of sub) rows += rowCount(m.data);
  })().catch(() => {});
  return { received: () => rows, close: () => nc.close().catch(() => {}) };
}

const natsArgs = (port: number) => ["-a", "127.0.0.1", "-p", String(port)];

Deno.test({
  name: "nats: no server at startup is an error; the server away 10 s at 1 s polls loses no row",
  ignore: missing(NATS, "nats-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    const refused = await xtcp2([
      ...freeListenArgs(),
      "-maxLoops",
      "1",
      "-dest",
      `nats:127.0.0.1:${port}`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`cannot start: nats 127\\.0\\.0\\.1:${port}: `));
    await using load = await startLoad({ conns: 200, bytes: 10 });
    let server = await startServer(NATS, natsArgs(port), /Server is ready/);
    const sub = await natsCounter(port, "xtcp-test");
    try {
      const d = daemon(`nats:127.0.0.1:${port}`, "xtcp-test", load.netns);
      let during = { ready: 0, rows: 0 };
      const log = await outage(d, sub.received, async () => {
        await stop(server);
        // While delivery is behind, collection goes on: ready, and the backlog shows.
        await until("a backlog", async () => {
          const readyz = await fetch(`http://127.0.0.1:${d.httpPort}/readyz`);
          await readyz.body?.cancel();
          const text = await (await fetch(`http://127.0.0.1:${d.httpPort}/metrics`)).text();
          const rows = Number(/^xtcp_dest_queue_rows\{dest="nats"\} (\d+)/m.exec(text)?.[1] ?? 0);
          during = { ready: readyz.status, rows };
          return rows > 0;
        }, 8000);
      }, async () => {
        server = await startServer(NATS, natsArgs(port), /Server is ready/);
      });
      assert.equal(during.ready, 200, "/readyz stays 200 while delivery is behind");
      assert.ok(during.rows > 0, "xtcp_dest_queue_rows shows the backlog");
      assert.match(log, /nats: send failed, retrying with backoff/);
      assert.match(log, /backlog \d+ envelopes/, "the poll line shows the backlog");
      assert.equal(dropped(log), 0, log);
      await accounted(log, sub.received, "nats");
    } finally {
      await sub.close();
      await stop(server);
    }
  },
});

Deno.test({
  name:
    "nats: an outage longer than the queue: rows received + rows counted as dropped = rows collected, exactly",
  ignore: missing(NATS, "nats-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    await using load = await startLoad({ conns: 200, bytes: 10 });
    let server = await startServer(NATS, natsArgs(port), /Server is ready/);
    const sub = await natsCounter(port, "xtcp-small");
    try {
      // About two flushes fit: ten seconds without the server overflow it.
      const d = daemon(`nats:127.0.0.1:${port}`, "xtcp-small", load.netns, [
        "-destQueueBytes",
        "300000",
      ]);
      const log = await outage(d, sub.received, () => stop(server), async () => {
        server = await startServer(NATS, natsArgs(port), /Server is ready/);
      });
      assert.ok(dropped(log) > 0, `the queue overflowed:\n${log}`);
      assert.match(log, /delivery queue full: dropping envelopes \(drop_oldest\)/);
      await accounted(log, sub.received, "nats, small queue");
    } finally {
      await sub.close();
      await stop(server);
    }
  },
});

Deno.test({
  name:
    "nats with a spool: the daemon killed (SIGKILL) during an outage sends what it spooled once restarted",
  ignore: missing(NATS, "nats-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    const spool = Deno.makeTempDirSync({ prefix: "xtcp2-spool-" });
    await using load = await startLoad({ conns: 200, bytes: 10 });
    let server = await startServer(NATS, natsArgs(port), /Server is ready/);
    const extra = ["-destQueueBytes", "200000", "-spoolDir", spool];
    try {
      const first = daemon(`nats:127.0.0.1:${port}`, "xtcp-spool", load.netns, extra);
      await until("two polls", () => polls(first.log()) >= 2);
      await stop(server);
      const seen = polls(first.log());
      await until("five polls without the server", () => polls(first.log()) >= seen + 5, 20_000);
      await new Promise((r) => setTimeout(r, 1500)); // the spool's periodic fsync
      await first.signal("SIGKILL");
      await first.child.status;
      assert.ok(
        [...Deno.readDirSync(spool)].some((e) => e.name.endsWith(".xsp")),
        "segments on disk",
      );
      server = await startServer(NATS, natsArgs(port), /Server is ready/);
      const sub = await natsCounter(port, "xtcp-spool");
      try {
        const second = daemon(`nats:127.0.0.1:${port}`, "xtcp-spool", load.netns, extra);
        await until("three polls", () => polls(second.log()) >= 3, 20_000);
        const log = await stopDaemon(second);
        const left = /(\d+) envelopes \((\d+) rows, \d+ bytes\) left by the last run/.exec(log);
        assert.ok(left, `the spool was found:\n${log}`);
        const want = Number(left[2]) + collected(log) - dropped(log);
        await until(`${want} rows`, () => sub.received() >= want, 20_000);
        assert.ok(Number(left[2]) > 0);
      } finally {
        await sub.close();
      }
      const leftover = [...Deno.readDirSync(spool)].filter((e) => e.name.endsWith(".xsp"));
      assert.deepEqual(leftover, [], "acknowledged segments are deleted");
    } finally {
      await stop(server);
      Deno.removeSync(spool, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "valkey: PUBLISH reaches subscribers; valkey-stream (XADD) with the server away 10 s loses no row; no server at startup is an error",
  ignore: missing(REDIS, "redis-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    const refused = await xtcp2([
      ...freeListenArgs(),
      "-maxLoops",
      "1",
      "-dest",
      `valkey:127.0.0.1:${port}`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`cannot start: valkey 127\\.0\\.0\\.1:${port}: `));
    await using load = await startLoad({ conns: 200, bytes: 10 });
    const args = redisArgs(port);
    let server = await startServer(REDIS, args, /Ready to accept connections/);
    // PUBLISH: one poll reaches a subscriber.
    let published = 0;
    const sub = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
    sub.on("error", () => {/* the server goes away on purpose */});
    await sub.connect();
    sub.on(
      "messageBuffer",
      (_ch: Buffer, msg: Buffer) => published += rowCount(new Uint8Array(msg)),
    );
    await sub.subscribe("xtcp-pub");
    const once = await xtcp2([
      "-maxLoops",
      "1",
      "-dest",
      `valkey:127.0.0.1:${port}`,
      "-topic",
      "xtcp-pub",
    ]);
    assert.equal(once.code, 0, once.stderr);
    await until("published rows", () => published >= collected(once.stderr) && published > 0);
    sub.disconnect();
    // valkey-stream: a reader that was away reads what it missed.
    let rows = 0;
    let lastId = "0-0";
    let reading = true;
    const reader = new Redis({ host: "127.0.0.1", port, retryStrategy: () => 100 });
    reader.on("error", () => {/* the server goes away on purpose */});
    const loop = (async () => {
      while (reading) {
        try {
          const res = await reader.xreadBuffer("BLOCK", 500, "STREAMS", "xtcp-stream", lastId);
          for (const [, entries] of res ?? []) {
            for (const [id, fields] of entries) {
              lastId = id.toString();
              const data = fields[1];
              if (data) rows += rowCount(new Uint8Array(data));
            }
          }
        } catch {
          await new Promise((r) => setTimeout(r, 100)); // server away
        }
      }
    })();
    try {
      const d = daemon(`valkey-stream:127.0.0.1:${port}`, "xtcp-stream", load.netns);
      const log = await outage(d, () => rows, () => stop(server), async () => {
        server = await startServer(REDIS, args, /Ready to accept connections/);
      });
      assert.equal(dropped(log), 0, log);
      await accounted(log, () => rows, "valkey-stream");
    } finally {
      reading = false;
      await loop;
      reader.disconnect();
      await stop(server);
    }
  },
});

Deno.test({
  name:
    "kafka (librdkafka's mock broker): the broker set down 10 s and up again loses no row; no broker at startup is an error",
  ignore: missing(RDKAFKA, "librdkafka1") || missing(KCAT, "kcat"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { Kafka, logLevel } = await import("kafkajs");
    quietKafkajsTimers(); // kafkajs's negative-timeout warning, as the daemon does
    const refused = await xtcp2([
      ...freeListenArgs(),
      "-maxLoops",
      "1",
      "-dest",
      `kafka:127.0.0.1:${freePort()}`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot start: kafka 127\.0\.0\.1:\d+: /);
    const bogus = await xtcp2([
      "-maxLoops",
      "1",
      "-dest",
      "kafka:h:1",
      "-kafkaCompression",
      "brotli",
    ]);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /--kafkaCompression: "brotli": must be one of/);

    await using load = await startLoad({ conns: 200, bytes: 10 });
    await using mock = await startMockKafka(["xtcp-test"]);
    /** A consumer of its own group reading the topic from the start; counts rows. */
    const counter = async (group: string) => {
      let rows = 0;
      const kafka = new Kafka({
        clientId: group,
        brokers: [mock.bootstrap],
        logLevel: logLevel.NOTHING,
      });
      const consumer = kafka.consumer({ groupId: group });
      await consumer.connect();
      await consumer.subscribe({ topic: "xtcp-test", fromBeginning: true });
      await consumer.run({
        eachMessage: ({ message }) => {
          if (message.value) rows += rowCount(new Uint8Array(message.value));
          return Promise.resolve();
        },
      });
      return { received: () => rows, close: () => consumer.disconnect().catch(() => {}) };
    };
    const live = await counter("xtcp2-live");
    try {
      const d = daemon(`kafka:${mock.bootstrap}`, "xtcp-test", load.netns);
      const log = await outage(
        d,
        live.received,
        () => mock.setBroker(false),
        () => mock.setBroker(true),
      );
      assert.doesNotMatch(log, /Warning/);
      assert.equal(dropped(log), 0, log);
      // A consumer that is not ours (kcat, librdkafka) reads every record from the start.
      await accounted(log, await kcatRows(mock.bootstrap, "xtcp-test"), "kafka");
    } finally {
      await live.close();
    }
  },
});

/**
 * nsqd's TCP protocol, as far as a publisher uses it: no nsqd can be installed here (not in
 * Debian, not on npm), so this stub speaks it. It checks the magic, sends a heartbeat first (the
 * client must answer NOP), answers each PUB with OK, and can cut a connection after some PUBs.
 */
class NsqdStub implements AsyncDisposable {
  readonly port: number;
  readonly bodies: { topic: string; body: Uint8Array }[] = [];
  nops = 0;
  connections = 0;
  /** Close each connection after this many PUBs (0 = never). */
  cutAfter = 0;
  private readonly listener: Deno.TcpListener;
  private readonly conns = new Set<Deno.TcpConn>();

  constructor() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    (async () => {
      for await (const c of listener) {
        this.conns.add(c);
        this.serve(c).catch(() => {}).finally(() => {
          this.conns.delete(c);
          try {
            c.close();
          } catch { /* closed */ }
        });
      }
    })().catch(() => {});
  }

  private async serve(c: Deno.TcpConn): Promise<void> {
    this.connections++;
    let buf = new Uint8Array(0);
    const need = async (n: number) => {
      while (buf.length < n) {
        const chunk = new Uint8Array(65536);
        const got = await c.read(chunk);
        if (got === null) throw new Error("closed");
        const next = new Uint8Array(buf.length + got);
        next.set(buf);
        next.set(chunk.subarray(0, got), buf.length);
        buf = next;
      }
      const out = buf.slice(0, n);
      buf = buf.subarray(n);
      return out;
    };
    const frame = async (type: number, text: string) => {
      const data = new TextEncoder().encode(text);
      const f = new Uint8Array(8 + data.length);
      const dv = new DataView(f.buffer);
      dv.setUint32(0, 4 + data.length);
      dv.setUint32(4, type);
      f.set(data, 8);
      await c.write(f);
    };
    assert.equal(new TextDecoder().decode(await need(4)), "  V2");
    await frame(0, "_heartbeat_");
    let pubs = 0;
    for (;;) {
      let line = "";
      for (;;) {
        const ch = new TextDecoder().decode(await need(1));
        if (ch === "\n") break;
        line += ch;
      }
      if (line === "NOP") {
        this.nops++;
        continue;
      }
      const m = /^PUB (\S+)$/.exec(line);
      if (!m) {
        await frame(1, `E_INVALID unknown command ${line}`);
        return;
      }
      const size = new DataView((await need(4)).buffer).getUint32(0);
      this.bodies.push({ topic: m[1], body: await need(size) });
      await frame(0, "OK");
      if (this.cutAfter && ++pubs >= this.cutAfter) return;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    for (const c of this.conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Promise.resolve();
  }
}

Deno.test({
  name:
    "nsq (nsqd protocol stub): heartbeats answered; a connection cut after every second PUB is reopened and no row is lost",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const refused = await xtcp2([
      ...freeListenArgs(),
      "-maxLoops",
      "1",
      "-dest",
      `nsq:127.0.0.1:${freePort()}`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot start: nsq 127\.0\.0\.1:\d+: /);
    await using load = await startLoad({ conns: 200, bytes: 10 });
    await using nsqd = new NsqdStub();
    nsqd.cutAfter = 2; // every second PUB ends its connection
    const d = daemon(`nsq:127.0.0.1:${nsqd.port}`, "xtcp-test", load.netns);
    const received = () => nsqd.bodies.reduce((n, b) => n + rowCount(b.body), 0);
    await until("six polls", () => polls(d.log()) >= 6, 30_000);
    await stopDaemon(d);
    assert.ok(nsqd.bodies.every((b) => b.topic === "xtcp-test"));
    assert.ok(nsqd.nops >= 1, "the heartbeat was answered with NOP");
    assert.ok(nsqd.connections >= 3, `${nsqd.connections} connections: it reconnected`);
    await accounted(d.log(), received, "nsq");
  },
});

/** A unix stream receiver of uvarint-framed flushes, which can go away and come back. */
class UnixReceiver {
  rows = 0;
  private listener: Deno.UnixListener | undefined;
  private readonly conns = new Set<Deno.UnixConn>();
  constructor(readonly path: string) {}

  start(): void {
    const listener = Deno.listen({ transport: "unix", path: this.path });
    this.listener = listener;
    (async () => {
      for await (const c of listener) {
        this.conns.add(c);
        this.serve(c).catch(() => {}).finally(() => this.conns.delete(c));
      }
    })().catch(() => {});
  }

  private async serve(c: Deno.UnixConn): Promise<void> {
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(1 << 16);
    for (;;) {
      const got = await c.read(chunk);
      if (got === null) return;
      const next = new Uint8Array(buf.length + got);
      next.set(buf);
      next.set(chunk.subarray(0, got), buf.length);
      buf = next;
      for (;;) {
        let len: number;
        let at: number;
        try {
          [len, at] = readVarint(buf, 0);
        } catch {
          break; // the length is not all here yet
        }
        if (buf.length < at + len) break;
        this.rows += rowCount(buf.slice(at, at + len));
        buf = buf.slice(at + len);
      }
    }
  }

  stop(): void {
    this.listener?.close();
    for (const c of this.conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    this.conns.clear();
    try {
      Deno.removeSync(this.path);
    } catch { /* gone */ }
  }
}

Deno.test({
  name: "unix: a receiver that goes away 10 s and comes back on the same path loses no row",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "xtcp2-unix-" });
    const rx = new UnixReceiver(`${dir}/rx.sock`);
    await using load = await startLoad({ conns: 200, bytes: 10 });
    rx.start();
    try {
      const d = daemon(`unix:${rx.path}`, "x", load.netns);
      const log = await outage(
        d,
        () => rx.rows,
        () => Promise.resolve(rx.stop()),
        () => Promise.resolve(rx.start()),
      );
      assert.equal(dropped(log), 0, log);
      await accounted(log, () => rx.rows, "unix");
    } finally {
      rx.stop();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "kafka: every --kafkaCompression codec (none, gzip, snappy, lz4, zstd) is read back by a consumer that is not ours (kcat, librdkafka)",
  ignore: missing(RDKAFKA, "librdkafka1") || missing(KCAT, "kcat"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    await using load = await startLoad({ conns: 100, bytes: 10 });
    await using mock = await startMockKafka(codecs.map((c) => `xtcp-${c}`));
    for (const codec of codecs) {
      const d = daemon(`kafka:${mock.bootstrap}`, `xtcp-${codec}`, load.netns, [
        "-maxLoops",
        "2",
        "-kafkaCompression",
        codec,
        "-shutdownDrain",
        "20s",
      ]);
      const status = await d.child.status;
      await d.drained;
      const log = d.log();
      assert.equal(status.code, 0, log);
      const rows = await kcatRows(mock.bootstrap, `xtcp-${codec}`);
      assert.ok(rows() > 0, `${codec}: rows read back`);
      assert.equal(dropped(log), 0, log);
      assert.equal(rows(), collected(log), `${codec}: every row read back`);
    }
  },
});
