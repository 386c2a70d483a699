/**
 * Marshallers and local destinations with real receivers: every format parses back to the
 * records; UDP, unix stream and unixgram receive what was sent (large flushes split into valid
 * pieces); files rotate.
 */
import assert from "node:assert/strict";
import { unframe } from "./support/records.ts";
import dgram from "node:dgram";
import { equals, fromBinary, fromJsonString } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  XtcpFlatRecordSchema,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { decodeCapture } from "../src/netlink/capture.ts";
import { EnvelopeWriter } from "../src/record/encoder.ts";
import { Stamp } from "../src/record/stamp.ts";
import { marshaller } from "../src/format/marshal.ts";
import type { DestOptions } from "../src/dest/destination.ts";
import { openDestination } from "../src/dest/registry.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { ownCaptures } from "./support/fixtures.ts";

function envelope(): EnvelopeWriter {
  const env = new EnvelopeWriter();
  const stamp = new Stamp({
    hostname: "h",
    netns: "default",
    timestamp_ns: 1_732_000_000_123_456_789n,
  });
  // The 6.18 capture's ~200 rows: the UDP test's two copies make a flush of a few datagrams,
  // which the receiving socket's default buffer holds.
  const c = ownCaptures().find((p) => p.name === "own/loopback_6_18")!.pcap;
  decodeCapture(Deno.readFileSync(c), c, -1, (v) => env.add(v, stamp));
  return env;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("every marshaller's output parses back to the records", () => {
  const env = envelope();
  const rows = fromBinary(EnvelopeSchema, env.envelope()).row;
  assert.ok(rows.length > 100);
  const jsonl = text(marshaller("jsonl").marshal(env)).trimEnd().split("\n");
  assert.equal(jsonl.length, rows.length);
  jsonl.forEach((l, i) => {
    assert.ok(l.includes('"inet_diag_msg_socket_cookie"'), "snake_case proto names");
    assert.ok(equals(XtcpFlatRecordSchema, fromJsonString(XtcpFlatRecordSchema, l), rows[i]));
  });
  const pj = text(marshaller("protoJson").marshal(env));
  assert.ok(
    equals(
      EnvelopeSchema,
      fromJsonString(EnvelopeSchema, pj),
      fromBinary(EnvelopeSchema, env.envelope()),
    ),
  );
  const pt = text(marshaller("protoText").marshal(env));
  assert.equal(pt.match(/^row \{$/gm)?.length, rows.length);
  assert.match(pt, /^ {2}congestion_algorithm_enum: CONGESTION_ALGORITHM_/m);
  const mp = marshaller("msgpack").marshal(env);
  assert.deepEqual([...mp.subarray(0, 5)], [0x81, 0xa3, 0x72, 0x6f, 0x77]); // {"row": …
  assert.deepEqual(unframe(marshaller("protobufList").marshal(env)), env.envelope());
  // csv: header once per process, humanised cells, --columns order.
  const csv = marshaller(
    "csv",
    "netns,inetDiagMsgState,inetDiagMsgSocketSource,inetDiagMsgSocketSourcePort,timestampNs",
  );
  const first = text(csv.marshal(env)).trimEnd().split("\n");
  const second = text(csv.marshal(env)).trimEnd().split("\n");
  assert.equal(
    first[0],
    "netns,inetDiagMsgState,inetDiagMsgSocketSource,inetDiagMsgSocketSourcePort,timestampNs",
  );
  assert.equal(first.length, rows.length + 1);
  assert.equal(second.length, rows.length, "header only once");
  assert.match(
    first[1],
    /^default,(LISTEN|ESTABLISHED),(127\.0\.0\.1|::1),\d+,2024-11-19T07:06:40\.123456789Z$/,
  );
  const tsv = text(marshaller("tsv").marshal(env)).split("\n")[0].split("\t");
  assert.equal(tsv[0], "schemaVersion");
  assert.ok(tsv.length > 150);
});

function opts(marshal: string): DestOptions {
  return {
    marshal,
    topic: "xtcp",
    fileMaxBytes: 64 * 1024,
    fileMaxAgeMs: 3_600_000,
    counters: new Counters(),
    log: new Logger(0),
  };
}

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

Deno.test("file: protobufList writes one envelope per file; line formats rotate by size", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const env = envelope();
    const pb = await openDestination(`file:${dir}/pb/out`, opts("protobufList"));
    await pb.send(marshaller("protobufList").marshal(env).slice(), "message");
    await pb.send(marshaller("protobufList").marshal(env).slice(), "message");
    await pb[Symbol.asyncDispose]();
    const files = [...Deno.readDirSync(`${dir}/pb`)].map((e) => e.name).sort();
    assert.equal(files.length, 2);
    assert.ok(files.every((f) => /^out\..*-\d{6}\.binpb$/.test(f)), files.join());
    const o = opts("jsonl");
    const j = await openDestination(`file:${dir}/j/out.jsonl`, o);
    const payload = marshaller("jsonl").marshal(env); // ~ 100 KiB > 64 KiB limit
    await j.send(payload, "lines");
    await j.send(payload, "lines");
    await j[Symbol.asyncDispose]();
    const jf = [...Deno.readDirSync(`${dir}/j`)].map((e) => e.name).sort();
    assert.ok(jf.length >= 2, jf.join());
    assert.equal(o.counters.get("destFile", "rotate"), 1);
    assert.equal(Deno.statSync(`${dir}/j/out.jsonl`).mode! & 0o777, 0o600);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
