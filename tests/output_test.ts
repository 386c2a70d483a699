/**
 * Destinations with real receivers on local sockets: UDP, unix stream and unixgram receive what
 * was sent (large flushes split into valid pieces).
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { fromBinary } from "@bufbuild/protobuf";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { EnvelopeWriter } from "../src/record/encoder.ts";
import { marshaller } from "../src/format/marshal.ts";
import { openDestination } from "../src/dest/registry.ts";
import { captureEnvelope as envelope, testDestOptions as opts } from "./support/envelope.ts";
import { unframe } from "./support/records.ts";

Deno.test({
  name: "udp: a flush larger than a datagram is split into complete envelopes, nothing lost",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const sock = dgram.createSocket("udp6");
    const got: Uint8Array[] = [];
    await new Promise<void>((r) => sock.bind(0, "::1", () => r()));
    sock.on("message", (m) => got.push(new Uint8Array(m)));
    const port = sock.address().port;
    const env = envelope();
    // Make a flush bigger than 64 KiB: the same rows several times.
    const big = new EnvelopeWriter();
    for (let k = 0; k < 2; k++) {
      const b = env.envelope();
      big.out.ensure(b.length);
      big.out.u8.set(b, big.out.pos);
      big.out.pos += b.length;
      big.rows += env.rows;
    }
    const framed = big.framed().slice();
    assert.ok(framed.length > 65507);
    const o = opts("protobufList");
    const d = await openDestination(`udp:[::1]:${port}`, o);
    await d.send(framed, "message");
    await new Promise((r) => setTimeout(r, 300));
    await d[Symbol.asyncDispose]();
    sock.close();
    assert.ok(got.length >= 2, `${got.length} datagrams`);
    const rows = got.flatMap((g) => fromBinary(EnvelopeSchema, unframe(g)).row);
    assert.equal(rows.length, big.rows);
    assert.ok(got.every((g) => g.length <= 65507));
    assert.equal(o.counters.get("udp", "Writes"), got.length);
  },
});

Deno.test({
  name: "unix stream: uvarint(len) || payload per flush; unixgram: one datagram per flush",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync();
    const path = `${dir}/s.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const received = (async () => {
      const conn = await listener.accept();
      const chunks: Uint8Array[] = [];
      const buf = new Uint8Array(65536);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        chunks.push(buf.slice(0, n));
      }
      conn.close();
      const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
      let p = 0;
      for (const c of chunks) (all.set(c, p), p += c.length);
      return all;
    })();
    const env = envelope();
    const payload = marshaller("jsonl").marshal(env);
    const d = await openDestination(`unix:${path}`, opts("jsonl"));
    await d.send(payload, "lines");
    await d.send(payload, "lines");
    await d[Symbol.asyncDispose]();
    const all = await received;
    listener.close();
    let at = 0;
    const frames: Uint8Array[] = [];
    while (at < all.length) {
      let len = 0;
      for (let shift = 0;; at++, shift += 7) {
        len += (all[at] & 0x7f) * 2 ** shift;
        if ((all[at] & 0x80) === 0) break;
      }
      at++;
      frames.push(all.subarray(at, at + len));
      at += len;
    }
    assert.equal(frames.length, 2);
    assert.deepEqual(frames[0], payload);
    // unixgram, received by a python datagram socket (Deno's own API for it is unstable).
    const gpath = `${dir}/g.sock`;
    const py = new Deno.Command("/usr/bin/python3", {
      args: [
        "-c",
        `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(${
          JSON.stringify(gpath)
        }); print("ready", flush=True)
for i in range(2):
    print(len(s.recv(1<<20)), flush=True)`,
      ],
      stdout: "piped",
    }).spawn();
    const lines = py.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.match((await lines.read()).value ?? "", /ready/);
    const g = await openDestination(`unixgram:${gpath}`, opts("jsonl"));
    const small = new TextEncoder().encode("hello\n");
    await g.send(small, "lines");
    await g.send(small, "lines");
    await g[Symbol.asyncDispose]();
    let out = "";
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      out += value;
    }
    await py.status;
    assert.deepEqual(out.trim().split("\n"), ["6", "6"]);
    Deno.removeSync(dir, { recursive: true });
  },
});
