/**
 * The pipelined poll (--pipeline): a worker decodes and encodes while the main thread receives.
 * Same records as the in-thread poll, through every kind of destination (the worker writes
 * synchronous ones itself, asynchronous ones go back through the main thread), and the live
 * stream still sees every envelope.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { createClient } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { XTCPFlatRecordService } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { transport } from "../src/cmd/client_common.ts";
import { xtcp2 } from "./support/run.ts";
import { unframe } from "./support/records.ts";
import { daemon, stopDaemon } from "./support/delivery.ts";

const dec = new TextDecoder();

/** "sport>dport" of the daemon's own namespace, sorted. */
function ports(rows: { netns: string; sport: number; dport: number }[]): string[] {
  return rows.filter((r) => r.netns === "default").map((r) => `${r.sport}>${r.dport}`).sort();
}

Deno.test({
  name:
    "--pipeline writes the same records as the in-thread poll (stdout jsonl, file protobufList)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 2500, bytes: 10 });
    const netns = ["ip", "netns", "exec", load.netns];
    const base = ["-maxLoops", "1", "-pollJitterPct", "0"];
    const jsonl = async (extra: string[]) => {
      const r = await xtcp2([...base, "-dest", "stdout", "-marshal", "jsonl", ...extra], {
        prefix: netns,
      });
      assert.equal(r.code, 0, r.stderr);
      return ports(
        dec.decode(r.stdout).trim().split("\n").map((l) => JSON.parse(l)).map((o) => ({
          netns: o.netns,
          sport: o.inet_diag_msg_socket_source_port,
          dport: o.inet_diag_msg_socket_destination_port ?? 0,
        })),
      );
    };
    const plain = await jsonl([]);
    assert.equal(plain.length, 5000 + load.listeners + 2);
    assert.deepEqual(await jsonl(["-pipeline"]), plain);
    // Several envelopes (rows cap), each its own protobufList file.
    const dir = Deno.makeTempDirSync();
    try {
      const r = await xtcp2([
        ...base,
        "-pipeline",
        "-dest",
        `file:${dir}/out`,
        "-marshal",
        "protobufList",
        "-envelopeFlushRows",
        "1000",
      ], { prefix: netns });
      assert.equal(r.code, 0, r.stderr);
      const rows = [];
      const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.endsWith(".binpb")
      );
      assert.ok(files.length >= 5, `${files.length} files`);
      for (const f of files) {
        const envelope = unframe(Deno.readFileSync(`${dir}/${f}`), f);
        for (const row of fromBinary(EnvelopeSchema, envelope).row) {
          rows.push({
            netns: row.netns,
            sport: row.inetDiagMsgSocketSourcePort,
            dport: row.inetDiagMsgSocketDestinationPort,
          });
        }
      }
      assert.deepEqual(ports(rows), plain);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "--pipeline with an asynchronous destination (udp) sends every flush from the main thread",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 200, bytes: 10 });
    // The receiver lives in the load's namespace, where the daemon runs.
    const recv = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        load.netns,
        "/usr/bin/python3",
        "-c",
        "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,8<<20)\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1],flush=True)\ns.settimeout(30)\nn=0\ntry:\n  while True:\n    n+=len(s.recv(70000).split(b'\\n'))-1\n    s.settimeout(2)\nexcept socket.timeout:\n  print(n,flush=True)",
      ],
      stdout: "piped",
    }).spawn();
    const reader = recv.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) text += (await reader.read()).value ?? "";
    const port = Number(text.trim());
    const r = await xtcp2([
      "-maxLoops",
      "1",
      "-pipeline",
      "-dest",
      `udp:127.0.0.1:${port}`,
      "-marshal",
      "jsonl",
    ], { prefix: ["ip", "netns", "exec", load.netns] });
    assert.equal(r.code, 0, r.stderr);
    const sockets = Number(/poll 1: \d+ namespaces, (\d+) sockets/.exec(r.stderr)?.[1]);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    await recv.status;
    const lines = Number(text.trim().split("\n").at(-1));
    assert.equal(lines, sockets, r.stderr);
  },
});

Deno.test({
  name: "--pipeline: live streams still get every record (the worker hands envelopes back)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 300, bytes: 10 });
    // Seeing only the load's namespace: other namespaces on the host would fill the stream.
    const d = daemon("null", "protobufList", ["-pipeline"], load.netns);
    const port = d.grpcPort;
    // Closed before the daemon stops (see api_test.ts: Deno's nghttp2 and a server's GOAWAY).
    const sessions = new Http2SessionManager(`http://127.0.0.1:${port}`);
    try {
      const client = createClient(
        XTCPFlatRecordService,
        transport({ target: "127.0.0.1", port: String(port), token: "" }, sessions),
      );
      const seen = new Set<string>();
      const ctl = new AbortController();
      const deadline = setTimeout(() => ctl.abort(), 15_000);
      for (let attempt = 0; attempt < 50 && seen.size < 600; attempt++) {
        try {
          for await (const m of client.flatRecords({}, { signal: ctl.signal })) {
            const r = m.xtcpFlatRecord!;
            if (r.netns === load.netns && r.inetDiagMsgSocketDestinationPort !== 0) {
              seen.add(`${r.inetDiagMsgSocketSourcePort}>${r.inetDiagMsgSocketDestinationPort}`);
            }
            if (seen.size >= 600) break;
          }
        } catch {
          if (ctl.signal.aborted) break;
          await new Promise((r) => setTimeout(r, 200)); // not listening yet
        }
      }
      clearTimeout(deadline);
      assert.equal(
        seen.size,
        600,
        `every established socket of the load came through:\n${d.log()}`,
      );
    } finally {
      sessions.abort();
      await stopDaemon(d);
      assert.doesNotMatch(d.log(), /pipeline worker/i);
    }
  },
});
