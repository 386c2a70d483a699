/**
 * The NATS and RESP protocols written in src/dest/, against Debian's real nats-server and
 * redis-server on free loopback ports, read back by the npm clients (nats.js, ioredis): another
 * implementation of each protocol on the other side.
 *
 * NATS: a flush above the server's max_payload arrives split at rows, every row once; the
 * server's own PINGs are answered while the daemon sends nothing (no stale-connection close, no
 * reconnect); a server that requires auth is refused at startup, by name. RESP: replies parsed
 * whole and in pieces; a command the server refuses (WRONGTYPE) fails as refused; the server
 * killed between sends fails the next send, and the one after reconnects.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { connect as natsConnect } from "nats";
import { Redis } from "ioredis";
import { BROKER_DESTINATIONS } from "../src/dest/brokers.ts";
import { openDestination, registerDestinations } from "../src/dest/registry.ts";
import { parseResp, RespError } from "../src/dest/valkey.ts";
import { marshaller } from "../src/format/marshal.ts";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { isRefused } from "../src/util/errors.ts";
import { captureEnvelope, testDestOptions } from "./support/envelope.ts";
import { unframe } from "./support/records.ts";
import { freePort, until } from "./support/run.ts";
import { missing, NATS, REDIS, redisArgs, startServer, stop } from "./support/servers.ts";

// As the full xtcp2 entrypoint does (the minimal one has no broker destinations).
registerDestinations(BROKER_DESTINATIONS);

const enc = new TextEncoder();

/** One protobufList flush of the capture's rows, and their count. */
function flush(): { bytes: Uint8Array; rows: number } {
  const bytes = marshaller("protobufList").marshal(captureEnvelope()).slice();
  return { bytes, rows: fromBinary(EnvelopeSchema, unframe(bytes)).row.length };
}

/** nats-server with `conf` (NATS's config syntax) on a free port. */
async function nats(conf: string): Promise<{ port: number; child: Deno.ChildProcess }> {
  const port = freePort();
  const file = await Deno.makeTempFile({ suffix: ".conf" });
  await Deno.writeTextFile(file, `listen: 127.0.0.1:${port}\n${conf}\n`);
  const child = await startServer(NATS, ["-c", file], /Server is ready/);
  await Deno.remove(file);
  return { port, child };
}

Deno.test({
  name:
    "nats protocol: split at max_payload, every row once; server PINGs answered while idle; auth refused by name",
  ignore: missing(NATS, "nats-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { bytes, rows } = flush();
    const max = 4096;
    assert.ok(bytes.length > 3 * max, `a flush of ${bytes.length} bytes`);
    const server = await nats(`max_payload: ${max}\nping_interval: "1s"\nping_max: 1`);
    const sub = await natsConnect({ servers: `127.0.0.1:${server.port}` });
    try {
      let got = 0;
      let pieces = 0;
      const s = sub.subscribe("xtcp");
      (async () => {
        for await (const m of s) {
          pieces++;
          assert.ok(m.data.length <= max);
          got += fromBinary(EnvelopeSchema, unframe(m.data)).row.length;
        }
      })().catch(() => {});
      await sub.flush();
      const opts = testDestOptions("protobufList");
      await using dest = await openDestination(`nats:127.0.0.1:${server.port}`, opts);
      await dest.send(bytes, "message");
      await until("every row", () => got === rows);
      assert.ok(pieces > 3, `${pieces} pieces`);
      // Idle for four of the server's ping intervals (it closes a client that misses ping_max).
      await new Promise((r) => setTimeout(r, 4500));
      await dest.send(bytes, "message");
      await until("every row again", () => got === 2 * rows);
      assert.equal(opts.counters.get("destNATS", "connect", "count"), 1, "one connection");
      assert.equal(opts.counters.get("destNATS", "disconnect", "count"), 0);
    } finally {
      await sub.close();
      await stop(server.child);
    }
    const auth = await nats(`authorization { user: a, password: b }`);
    try {
      await assert.rejects(
        openDestination(`nats:127.0.0.1:${auth.port}`, testDestOptions("protobufList")),
        /the server requires auth/,
      );
    } finally {
      await stop(auth.child);
    }
  },
});

Deno.test("resp: replies parsed whole, in pieces, nested; bytes that are no reply throw", () => {
  const cases: [string, unknown][] = [
    ["+PONG\r\n", "PONG"],
    [":42\r\n", 42],
    ["$15\r\n1732000000000-0\r\n", "1732000000000-0"],
    ["$-1\r\n", null],
    ["*2\r\n:1\r\n$2\r\nab\r\n", [1, "ab"]],
  ];
  for (const [text, want] of cases) {
    const b = enc.encode(text);
    assert.deepEqual(parseResp(b, 0, b.length), { reply: want, used: b.length }, text);
    for (let cut = 1; cut < b.length; cut++) {
      assert.equal(parseResp(b, 0, cut), undefined, `${JSON.stringify(text)} cut at ${cut}`);
    }
  }
  const err = enc.encode("-WRONGTYPE Operation against a key\r\n:1\r\n");
  const p = parseResp(err, 0, err.length);
  assert.ok(p && p.reply instanceof RespError);
  assert.equal(p.reply.message, "WRONGTYPE Operation against a key");
  assert.deepEqual(parseResp(err, p.used, err.length), { reply: 1, used: 4 });
  const bad = enc.encode("HTTP/1.1 400\r\n");
  assert.throws(() => parseResp(bad, 0, bad.length), /not a RESP reply/);
});

Deno.test({
  name:
    "resp protocol: XADD read back by ioredis; WRONGTYPE refused; the server killed fails the send, the next one reconnects",
  ignore: missing(REDIS, "redis-server"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    const args = redisArgs(port);
    let server = await startServer(REDIS, args, /Ready to accept connections/);
    const client = new Redis({
      host: "127.0.0.1",
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 1,
    });
    client.on("error", () => {/* the server goes away on purpose */});
    try {
      await client.connect();
      const { bytes } = flush();
      const opts = { ...testDestOptions("protobufList"), topic: "s" };
      await using dest = await openDestination(`valkey-stream:127.0.0.1:${port}`, opts);
      await dest.send(bytes, "message");
      const entries = await client.xrangeBuffer("s", "-", "+");
      assert.equal(entries.length, 1);
      const [, fields] = entries[0]!;
      assert.equal(fields[0]!.toString(), "data");
      assert.deepEqual(new Uint8Array(fields[1]!), bytes, "the flush, byte for byte");
      await client.set("k", "a string");
      await using wrong = await openDestination(`valkey-stream:127.0.0.1:${port}`, {
        ...testDestOptions("protobufList"),
        topic: "k",
      });
      const refused = await wrong.send(bytes, "message").then(() => undefined, (e) => e);
      assert.ok(isRefused(refused), `refused: ${refused}`);
      assert.match(String(refused), /WRONGTYPE/);
      client.disconnect();
      server.kill("SIGKILL");
      await server.status;
      await assert.rejects(dest.send(bytes, "message"));
      server = await startServer(REDIS, args, /Ready to accept connections/);
      await dest.send(bytes, "message");
      const back = new Redis({ host: "127.0.0.1", port });
      back.on("error", () => {});
      assert.equal(await back.xlen("s"), 1, "the restarted server (no persistence) got the send");
      back.disconnect();
      assert.equal(opts.counters.get("destValKey", "connect", "count"), 2);
    } finally {
      client.disconnect();
      await stop(server);
    }
  },
});
