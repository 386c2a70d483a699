/**
 * Marshallers and the file destination, from real rows (this project's own capture): every
 * format parses back to the records; files rotate and are private. Pure: no socket, no root.
 */
import assert from "node:assert/strict";
import { equals, fromBinary, fromJsonString } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  XtcpFlatRecordSchema,
} from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { marshaller } from "../src/format/marshal.ts";
import { openDestination } from "../src/dest/registry.ts";
import { captureEnvelope as envelope, testDestOptions as opts } from "./support/envelope.ts";
import { unframe } from "./support/records.ts";

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
