/**
 * Broker destinations against real servers on loopback (Debian's nats-server and redis-server,
 * started here on free ports and stopped after): every socket of every poll arrives as decodable
 * protobufList envelopes; the daemon refuses to start without its broker; when the broker goes
 * away the daemon keeps polling (the lost flushes are counted), and when it comes back on the same
 * port the records flow again.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { fromBinary } from "@bufbuild/protobuf";
import { connect as natsConnect } from "nats";
import { Redis } from "ioredis";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { startLoad } from "../bench/loadgen.ts";
import { freePort, spawnXtcp2, until, xtcp2 } from "./support/run.ts";
import { unframe } from "./support/records.ts";
import { RDKAFKA, startMockKafka } from "./support/kafka_mock.ts";

const NATS = "/usr/sbin/nats-server";
const REDIS = "/usr/bin/redis-server";

function missing(path: string, pkg: string): boolean {
  try {
    Deno.statSync(path);
    return false;
  } catch {
    console.error(`SKIP ${pkg} tests: ${path} missing (apt install ${pkg})`);
    return true;
  }
}

/** A server process, ready once `ready` shows in its output. */
async function startServer(cmd: string, args: string[], ready: RegExp): Promise<Deno.ChildProcess> {
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

async function stop(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* exited */ }
  await child.status;
}

/** Rows of one protobufList message, by namespace. */
function rowsOf(msg: Uint8Array): { netns: string; ts: bigint }[] {
  return fromBinary(EnvelopeSchema, unframe(msg)).row.map((r) => ({
    netns: r.netns,
    ts: r.timestampNs,
  }));
}

/** Runs the daemon polling every second into `dest`; returns it and its stderr so far. */
function daemon(dest: string, topic: string) {
  const child = spawnXtcp2([
    "-frequency",
    "1s",
    "-timeout",
    "900ms",
    "-pollJitterPct",
    "0",
    "-dest",
    dest,
    "-topic",
    topic,
    "-marshal",
    "protobufList",
    "-grpcPort",
    String(freePort()),
    "-promListen",
    `127.0.0.1:${freePort()}`,
  ]);
  let err = "";
  (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) err += c;
  })().catch(() => {});
  void child.stdout.cancel();
  return { child, log: () => err };
}

/** Polls of the load seen in full: namespace rows grouped by the poll's timestamp. */
function completePolls(rows: { netns: string; ts: bigint }[], netns: string, each: number) {
  const byPoll = new Map<bigint, number>();
  for (const r of rows) if (r.netns === netns) byPoll.set(r.ts, (byPoll.get(r.ts) ?? 0) + 1);
  return [...byPoll.values()].filter((n) => n === each).length;
}

Deno.test({
  name:
    "nats: every socket of every poll arrives on the subject; the daemon outlives the server and resumes when it returns",
  ignore: missing(NATS, "nats-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 10 });
    const each = 400 + load.listeners;
    const port = freePort();
    const args = ["-a", "127.0.0.1", "-p", String(port)];
    const refused = await xtcp2(["-maxLoops", "1", "-dest", `nats:127.0.0.1:${port}`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`cannot start: nats 127\\.0\\.0\\.1:${port}: `));
    let server = await startServer(NATS, args, /Server is ready/);
    const rows: { netns: string; ts: bigint }[] = [];
    const subscribe = async () => {
      const nc = await natsConnect({ servers: `127.0.0.1:${port}` });
      const sub = nc.subscribe("xtcp-test");
      (async () => {
        for await (const m of sub) rows.push(...rowsOf(m.data));
      })().catch(() => {});
      return nc;
    };
    let nc = await subscribe();
    const d = daemon(`nats:127.0.0.1:${port}`, "xtcp-test");
    try {
      await until("two complete polls", () => completePolls(rows, load.netns, each) >= 2);
      // The broker goes away: polls go on, the lost flushes are counted and said.
      await nc.close().catch(() => {});
      await stop(server);
      const pollsBefore = () => [...d.log().matchAll(/poll \d+: /g)].length;
      const seen = pollsBefore();
      await until("two polls without the server", () => pollsBefore() >= seen + 2);
      assert.match(d.log(), /nats: .*rows lost/);
      // Each of those polls took well under a second: no flush waited for the absent server.
      const late = [...d.log().matchAll(/poll \d+: .*, ([\d.]+) ms/g)].slice(seen + 1)
        .map((m) => Number(m[1]));
      assert.ok(late.every((ms) => ms < 900), `poll times without the server: ${late}`);
      assert.equal(await Promise.race([d.child.status.then(() => "exited"), "running"]), "running");
      // It comes back on the same port: the daemon reconnects (every 2 s) and records flow again.
      server = await startServer(NATS, args, /Server is ready/);
      rows.length = 0;
      nc = await subscribe();
      await until(
        "records after the server came back",
        () => completePolls(rows, load.netns, each) >= 1,
        20_000,
      );
    } finally {
      d.child.kill("SIGTERM");
      const status = await d.child.status;
      await nc.close().catch(() => {});
      await stop(server);
      assert.equal(status.code, 0, d.log());
    }
  },
});

Deno.test({
  name:
    "valkey/redis: every socket of every poll is PUBLISHed; no server at startup is an error; the daemon outlives the server and resumes",
  ignore: missing(REDIS, "redis-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    const refused = await xtcp2(["-maxLoops", "1", "-dest", `valkey:127.0.0.1:${port}`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`cannot start: valkey 127\\.0\\.0\\.1:${port}: `));

    await using load = await startLoad({ conns: 200, bytes: 10 });
    const each = 400 + load.listeners;
    const args = [
      "--bind",
      "127.0.0.1",
      "--port",
      String(port),
      "--save",
      "",
      "--appendonly",
      "no",
    ];
    let server = await startServer(REDIS, args, /Ready to accept connections/);
    const rows: { netns: string; ts: bigint }[] = [];
    const subscribe = async () => {
      const sub = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
      sub.on("error", () => {/* the server goes away on purpose */});
      await sub.connect();
      sub.on(
        "messageBuffer",
        (_ch: Buffer, msg: Buffer) => rows.push(...rowsOf(new Uint8Array(msg))),
      );
      await sub.subscribe("xtcp-test");
      return sub;
    };
    let sub = await subscribe();
    const d = daemon(`valkey:127.0.0.1:${port}`, "xtcp-test");
    try {
      await until("two complete polls", () => completePolls(rows, load.netns, each) >= 2);
      sub.disconnect();
      await stop(server);
      const polls = () => [...d.log().matchAll(/poll \d+: /g)].length;
      const seen = polls();
      await until("two polls without the server", () => polls() >= seen + 2);
      assert.match(d.log(), /rows lost/);
      assert.equal(await Promise.race([d.child.status.then(() => "exited"), "running"]), "running");
      server = await startServer(REDIS, args, /Ready to accept connections/);
      rows.length = 0;
      sub = await subscribe();
      await until(
        "records after the server came back",
        () => completePolls(rows, load.netns, each) >= 1,
        20_000,
      );
    } finally {
      d.child.kill("SIGTERM");
      const status = await d.child.status;
      sub.disconnect();
      await stop(server);
      assert.equal(status.code, 0, d.log());
    }
  },
});

Deno.test({
  name:
    "kafka (librdkafka's mock broker): every socket of every poll is one protobufList record of the topic; polls go on when the broker goes away",
  ignore: missing(RDKAFKA, "librdkafka1"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { Kafka, logLevel } = await import("kafkajs");
    const refused = await xtcp2(["-maxLoops", "1", "-dest", `kafka:127.0.0.1:${freePort()}`]);
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
    const each = 400 + load.listeners;
    const mock = await startMockKafka(["xtcp-test"]);
    const bootstrap = mock.bootstrap;
    const rows: { netns: string; ts: bigint }[] = [];
    const kafka = new Kafka({ clientId: "test", brokers: [bootstrap], logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: "xtcp2-test" });
    await consumer.connect();
    await consumer.subscribe({ topic: "xtcp-test", fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        if (message.value) rows.push(...rowsOf(new Uint8Array(message.value)));
        return Promise.resolve();
      },
    });
    const d = daemon(`kafka:${bootstrap}`, "xtcp-test");
    try {
      await until("two complete polls", () => completePolls(rows, load.netns, each) >= 2, 30_000);
      await consumer.disconnect();
      await mock.close(); // the broker goes away
      const polls = () => [...d.log().matchAll(/poll \d+: /g)].length;
      const seen = polls();
      await until("three polls without the broker", () => polls() >= seen + 3, 20_000);
      assert.match(d.log(), /kafka: .*rows lost/);
      assert.doesNotMatch(d.log(), /Warning/);
      assert.equal(await Promise.race([d.child.status.then(() => "exited"), "running"]), "running");
    } finally {
      d.child.kill("SIGTERM");
      const status = await d.child.status;
      await consumer.disconnect().catch(() => {});
      await mock.close();
      assert.equal(status.code, 0, d.log());
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
    "nsq (nsqd protocol stub): every socket of every poll is PUBlished on the topic; heartbeats answered; a cut connection is reopened",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const refused = await xtcp2(["-maxLoops", "1", "-dest", `nsq:127.0.0.1:${freePort()}`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cannot start: nsq 127\.0\.0\.1:\d+: /);

    await using load = await startLoad({ conns: 200, bytes: 10 });
    const each = 400 + load.listeners;
    await using nsqd = new NsqdStub();
    nsqd.cutAfter = 2; // every second PUB ends its connection
    const d = daemon(`nsq:127.0.0.1:${nsqd.port}`, "xtcp-test");
    try {
      const rows = () => nsqd.bodies.flatMap((b) => rowsOf(b.body));
      await until(
        "three complete polls",
        () => completePolls(rows(), load.netns, each) >= 3,
        30_000,
      );
      assert.ok(nsqd.bodies.every((b) => b.topic === "xtcp-test"));
      assert.ok(nsqd.nops >= 1, "the heartbeat was answered with NOP");
      assert.ok(nsqd.connections >= 2, `${nsqd.connections} connections: it reconnected`);
    } finally {
      d.child.kill("SIGTERM");
      const status = await d.child.status;
      assert.equal(status.code, 0, d.log());
    }
  },
});
