/**
 * The daemon's `--writeFiles` captures: real pcaps of every datagram sent and received, read back
 * by tshark (an independent reader) and by our decoder.
 */
import assert from "node:assert/strict";
import { decodeCapture } from "../src/netlink/capture.ts";
import { pcapPackets } from "../src/netlink/pcap.ts";
import { ownCaptures } from "./support/fixtures.ts";
import { xtcp2 } from "./support/run.ts";

async function tshark(path: string): Promise<string[][]> {
  const out = await new Deno.Command("tshark", {
    args: ["-r", path, "-T", "fields", "-e", "frame.len", "-e", "netlink.family"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `tshark failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => l.split("\t"));
}

async function checkWithTshark(path: string): Promise<number> {
  const bytes = Deno.readFileSync(path);
  const ours = [...pcapPackets(bytes, path)];
  const theirs = await tshark(path);
  assert.equal(theirs.length, ours.length, `${path}: packet count, tshark vs ours`);
  theirs.forEach(([len, family], i) => {
    assert.equal(Number(len), ours[i].end - ours[i].offset + 16, `${path}: packet ${i} length`);
    assert.equal(Number(family), 4, `${path}: packet ${i} is sock_diag`);
  });
  return ours.length;
}

Deno.test("committed captures are readable by tshark", async () => {
  const own = ownCaptures();
  assert.ok(own.length > 0, "no committed capture in tests/captures");
  for (const c of own) assert.ok((await checkWithTshark(c.pcap)) >= 4);
});

Deno.test("--writeFiles captures a live poll: tshark reads it, decode finds every socket", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const r = await xtcp2([
      "-maxLoops",
      "1",
      "-pollJitterPct",
      "0",
      "-dest",
      "stdout",
      "-marshal",
      "jsonl",
      "-writeFiles",
      "1000",
      "-capturePath",
      `${dir}/`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = new TextDecoder().decode(r.stdout).trim().split("\n").filter((l) => l);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.equal(files.length, 1, files.join());
    const path = `${dir}/${files[0]}`;
    assert.match(files[0], /^netlink\..*\.pcap$/);
    const packets = await checkWithTshark(path);
    assert.ok(packets >= 2, "a request and a reply at least");
    const s = decodeCapture(Deno.readFileSync(path), path, -1, () => {});
    assert.equal(s.stats.sockets, lines.length, "decode of the capture = records written");
    const namespaces = Number(/poll 1: (\d+) namespaces/.exec(r.stderr)?.[1]);
    assert.ok(namespaces >= 1, r.stderr);
    // One walk: one compat request (IPv4 and IPv6 together) per namespace on this kernel.
    assert.equal(s.stats.requests, namespaces, "one request per namespace");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
