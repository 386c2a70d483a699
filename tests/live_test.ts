/**
 * Live, against the running kernel: in a namespace the test creates, with at least 1,000
 * established IPv4 and IPv6 loopback connections carrying data, one collection yields exactly the
 * socket set of `ss`, and the fields that do not move between the two reads agree.
 */
import assert from "node:assert/strict";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { idiagExt, parseDeserializers } from "../src/netlink/deserializers.ts";
import { collectOnce } from "../src/poll/collect.ts";
import { compareWithSs, recKey, RecSink } from "./support/records.ts";
import { parseSs, ssAddrKey } from "./support/ss_text.ts";
import { xtcp2 } from "./support/run.ts";

async function ss(netns: string, flags: string): Promise<string> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, "ss", flags],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name: "live: 1,000 IPv4+IPv6 connections in a fresh namespace match ss exactly",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 1000, ipv6Fraction: 0.5, bytes: 1000 });
    const mask = parseDeserializers("all");
    const sink = new RecSink();
    const t0 = performance.now();
    const n = collectOnce({ nsPath: load.nsPath, mask, ext: idiagExt(mask) }, sink);
    const text = await ss(load.netns, "-tinmaeH");
    const elapsed = performance.now() - t0;
    const theirs = parseSs(text);
    assert.equal(n, sink.recs.length);
    assert.ok(n >= 2000 + load.listeners, `only ${n} sockets`);
    const fam = { v4: 0, v6: 0 };
    for (const r of sink.recs) r.get("inet_diag_msg_family") === 10 ? fam.v6++ : fam.v4++;
    assert.ok(fam.v4 >= 900 && fam.v6 >= 900, `families: ${JSON.stringify(fam)}`);

    const ours = new Map(sink.recs.map((r) => [recKey(r), r]));
    assert.equal(ours.size, sink.recs.length, "socket keys are unique");
    const ssKeys = new Set(theirs.map(ssAddrKey));
    assert.deepEqual(
      [...ours.keys()].filter((k) => !ssKeys.has(k)),
      [],
      "sockets we saw that ss did not",
    );
    assert.deepEqual([...ssKeys].filter((k) => !ours.has(k)), [], "sockets ss saw that we did not");
    let values = 0;
    for (const s of theirs) {
      values += compareWithSs(ours.get(ssAddrKey(s))!, s, `live ${ssAddrKey(s)}`, {
        lastTolMs: Math.ceil(elapsed) + 50,
      });
    }
    assert.ok(values > theirs.length * 20, `${values} values compared`);
    console.log(
      `live: ${n} sockets (${fam.v4} IPv4, ${fam.v6} IPv6), ${values} values agree with ss`,
    );
  },
});

Deno.test({
  name:
    "live: `xtcp2 -maxLoops 1 -dest stdout -marshal jsonl` prints every socket of its namespace",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 300, ipv6Fraction: 0.5, bytes: 10 });
    const r = await xtcp2([
      "-maxLoops",
      "1",
      "-pollJitterPct",
      "0",
      "-dest",
      "stdout",
      "-marshal",
      "jsonl",
    ], {
      prefix: ["ip", "netns", "exec", load.netns],
    });
    assert.equal(r.code, 0, r.stderr);
    // The daemon polls every namespace it can see; its own (where it runs) is "default".
    const all = new TextDecoder().decode(r.stdout).trim().split("\n").map((l) => JSON.parse(l))
      .filter((o) => o.netns === "default");
    const ports = (o: Record<string, unknown>) =>
      `${o.inet_diag_msg_socket_source_port}>${o.inet_diag_msg_socket_destination_port ?? 0}`;
    // The daemon sees its own gRPC (8889) and HTTP (9088) listeners; ss runs after it exited.
    const api = ["8889>0", "9088>0"];
    assert.deepEqual(all.map(ports).filter((p) => api.includes(p)).sort(), api);
    const lines = all.filter((o) => !api.includes(ports(o)));
    const theirs = parseSs(await ss(load.netns, "-tnaH"));
    assert.deepEqual(
      lines.map(ports).sort(),
      theirs.map((s) => `${s.localPort}>${s.peerPort}`).sort(),
    );
    assert.equal(lines.length, 600 + load.listeners);
    for (const o of lines) {
      assert.equal(o.schema_version, 1);
      assert.equal(o.netns, "default"); // the namespace it runs in is its "host" namespace
      assert.match(o.timestamp_ns, /^\d{19}$/);
      assert.ok(o.hostname);
    }
  },
});
