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
import { HUMANIZED_FIELDS, rfc3339Nano, rowWriter } from "../src/format/humanize.ts";
import { ownCaptures } from "./support/fixtures.ts";
import { parseSs, type SsSocket } from "./support/ss_text.ts";
import { openDestination } from "../src/dest/registry.ts";
import { captureEnvelope as envelope, testDestOptions as opts } from "./support/envelope.ts";
import { SS_TO_KERNEL, unframe } from "./support/records.ts";

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

/** The kernel's congestion control names as the enum's short names (bbr is BBR1). */
const CC_ENUM: Record<string, string> = {
  cubic: "CUBIC",
  dctcp: "DCTCP",
  vegas: "VEGAS",
  prague: "PRAGUE",
  bbr: "BBR1",
  bbr2: "BBR2",
  bbr3: "BBR3",
};

/** `ss` text of the capture the envelope was decoded from, by socket cookie. */
function ssByCookie(): Map<bigint, SsSocket> {
  const pair = ownCaptures().find((p) => p.name === "own/loopback_6_18")!;
  return new Map(parseSs(Deno.readTextFileSync(pair.ss!)).map((s) => [s.cookie!, s]));
}

Deno.test("humanize: addresses, states, congestion control and time as ss and RFC 3339 say", () => {
  const env = envelope();
  const rows = fromBinary(EnvelopeSchema, env.envelope()).row;
  const ss = ssByCookie();
  const lines = text(marshaller("humanize").marshal(env)).trimEnd().split("\n");
  const plains = text(marshaller("jsonl").marshal(env)).trimEnd().split("\n");
  assert.equal(lines.length, rows.length);
  const families = new Set<number>();
  const states = new Set<string>();
  let withCc = 0;
  lines.forEach((line, i) => {
    const h = JSON.parse(line);
    const plain = JSON.parse(plains[i]);
    // Everything else is jsonl's, key for key and in the same order.
    assert.deepEqual(Object.keys(h), Object.keys(plain));
    const rewritten = new Set(HUMANIZED_FIELDS);
    for (const k of Object.keys(h)) if (!rewritten.has(k)) assert.deepEqual(h[k], plain[k], k);
    const s = ss.get(BigInt(h.inet_diag_msg_socket_cookie));
    assert.ok(s, `socket ${h.inet_diag_msg_socket_cookie} is in the ss text`);
    families.add(h.inet_diag_msg_family);
    const star = (a: string) => a === "*" ? ["0.0.0.0", "::"] : [a];
    assert.ok(star(s.localAddr).includes(h.inet_diag_msg_socket_source), line);
    assert.ok(star(s.peerAddr).includes(h.inet_diag_msg_socket_destination), line);
    assert.equal(h.inet_diag_msg_state, SS_TO_KERNEL[s.state], line);
    states.add(h.inet_diag_msg_state);
    if (h.tcp_info_state !== undefined) assert.equal(h.tcp_info_state, SS_TO_KERNEL[s.state]);
    if (s.cc) {
      assert.equal(h.congestion_algorithm_enum, CC_ENUM[s.cc], line);
      withCc++;
    }
    assert.equal(h.timestamp_ns, "2024-11-19T07:06:40.123456789Z");
  });
  assert.deepEqual([...families].sort((a, b) => a - b), [2, 10], "IPv4 and IPv6 sockets");
  assert.ok(states.has("LISTEN") && states.has("ESTABLISHED"), [...states].join());
  assert.ok(withCc > 0, "sockets with a congestion control");
  // Go's RFC3339Nano: trailing zeros dropped; no fraction at all on a whole second; 0 is "".
  assert.equal(rfc3339Nano(1_732_000_000_120_000_000n), "2024-11-19T07:06:40.12Z");
  assert.equal(rfc3339Nano(1_732_000_000_000_000_000n), "2024-11-19T07:06:40Z");
  assert.equal(rfc3339Nano(0n), "");
  assert.equal(
    Date.parse(rfc3339Nano(1_732_000_000_123_456_789n)),
    Date.UTC(2024, 10, 19, 7, 6, 40, 123),
  );
});

Deno.test("csv/tsv --columns take proto or lowerCamelCase names; an unknown one is named", () => {
  const env = envelope();
  const rows = fromBinary(EnvelopeSchema, env.envelope()).row;
  const ss = ssByCookie();
  const cols = "inet_diag_msg_socket_cookie,inet_diag_msg_socket_destination,tcpInfoState," +
    "congestion_algorithm_enum";
  const write = rowWriter("tsv", cols);
  const first = write(rows).trimEnd().split("\n");
  assert.equal(first[0], cols.replaceAll(",", "\t"));
  assert.equal(first.length, rows.length + 1);
  assert.equal(write(rows).trimEnd().split("\n").length, rows.length, "header only once");
  for (const line of first.slice(1)) {
    const [cookie, peer, state, cc] = line.split("\t");
    const s = ss.get(BigInt(cookie))!;
    assert.ok((s.peerAddr === "*" ? ["0.0.0.0", "::"] : [s.peerAddr]).includes(peer), line);
    if (state) assert.equal(state, SS_TO_KERNEL[s.state], line);
    assert.equal(cc, s.cc ? CC_ENUM[s.cc] : "UNSPECIFIED", line);
  }
  assert.throws(() => rowWriter("csv", "netns,colour"), /--columns: "colour": unknown column/);
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
