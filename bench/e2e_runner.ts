/**
 * The floors of the end-to-end benchmark (bench/e2e.ts starts it once per case, and drives it
 * through stdin, one command a line; it answers each with one JSON line on stdout): the kernel's
 * dumps of the namespaces named in `--ns`, through our FFI netlink socket and one receive
 * buffer, receive only (the datagrams are walked for NLMSG_DONE, nothing is decoded):
 *
 * - `one`: the one-walk compat request (TCPDIAG_GETSOCK, AF_UNSPEC) per namespace;
 * - `two`: the two v2 requests (AF_INET, then AF_INET6) per namespace;
 * - `replay`: one dump of the first namespace recorded, then parse + encode (protobufList
 *   rows, as the daemon writes them) of it from memory, each datagram copied into the encoder's
 *   receive buffer first (where the daemon's kernel writes it), ns per socket.
 *
 * Wall time (performance.now) and CPU time (getrusage of the process: user + sys, which
 * includes the kernel's work inside sendmsg and recvmsg), summed over the namespaces, with the
 * sockets seen and each namespace's own wall time.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import type { NetlinkSocket } from "../ffi/netlink_socket.ts";
import { openNetlinkSocketIn } from "../ffi/netns.ts";
import { decoderMask, recvBufferSize } from "../src/config/derive.ts";
import { defaultConfig } from "../src/config/load.ts";
import { AF_INET, AF_INET6, AF_UNSPEC } from "../src/netlink/constants.ts";
import { idiagExt } from "../src/netlink/deserializers.ts";
import { Dumper, type DumpSink } from "../src/netlink/dump.ts";
import { parseDatagram, ParseStats, type SocketRun } from "../src/netlink/parse.ts";
import { writeCompatDumpRequest, writeDumpRequest } from "../src/netlink/request.ts";
import type { SocketView } from "../src/netlink/socket_view.ts";
import { EnvelopeWriter } from "../src/record/encoder.ts";
import { Stamp } from "../src/record/stamp.ts";
import { RowBatcher } from "../src/poll/batch.ts";
import { NetlinkCounts } from "../src/poll/netlink_counts.ts";
import { Counters } from "../src/util/log.ts";

const { values } = parseArgs({ args: Deno.args, options: { ns: { type: "string" } } });
if (!values.ns) throw new Error("usage: e2e_runner.ts --ns NAME[,NAME…] (commands on stdin)");
const names = values.ns.split(",");

const cfg = defaultConfig();
const mask = decoderMask(cfg);
const ext = idiagExt(mask);
const bufSize = recvBufferSize(cfg);
const sockets: NetlinkSocket[] = names.map((n) =>
  openNetlinkSocketIn(`/run/netns/${n}`, { rcvTimeoutMs: 10_000 })
);

const recvBuf = new Uint8Array(new ArrayBuffer(bufSize));
const recvDv = new DataView(recvBuf.buffer);
const req = new Uint8Array(new ArrayBuffer(128));
let seq = 1;

/** One dump, receive only: the sockets it held; throws what the kernel answered with an error. */
function floorDump(s: NetlinkSocket, family: number, compat: boolean): number {
  const r = { family, ext, seq: seq++ };
  s.send(req.subarray(0, compat ? writeCompatDumpRequest(req, 0, r) : writeDumpRequest(req, 0, r)));
  let msgs = 0;
  for (;;) {
    const n = s.recv(recvBuf);
    for (let off = 0; off + 16 <= n;) {
      const len = recvDv.getUint32(off, true);
      const type = recvDv.getUint16(off + 4, true);
      if (type === 3) return msgs; // NLMSG_DONE
      if (type === 2) throw new Error(`dump refused: errno ${-recvDv.getInt32(off + 16, true)}`);
      if (len < 16) throw new Error(`bad nlmsg_len ${len}`);
      msgs++;
      off += (len + 3) & ~3;
    }
  }
}

/** What one command measured. */
interface Floor {
  wallMs: number;
  cpuMs: number;
  sockets: number;
  /** Wall ms of each namespace's dump(s). */
  perNs: number[];
}

function floor(oneWalk: boolean): Floor {
  const perNs: number[] = [];
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (const s of sockets) {
    const t = performance.now();
    if (oneWalk) n += floorDump(s, AF_UNSPEC, true);
    else n += floorDump(s, AF_INET, false) + floorDump(s, AF_INET6, false);
    perNs.push(performance.now() - t);
  }
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wallMs, cpuMs: (c.user + c.system) / 1000, sockets: n, perNs };
}

/** One dump of the first namespace recorded, then parsed and encoded from memory. */
function replay(): { sockets: number; nsPerSocket: number } {
  const recorded: Uint8Array[] = [];
  const sink: DumpSink = { onSocket() {}, checkpoint() {}, rollback() {} };
  new Dumper({
    mask,
    ext,
    bufferSize: bufSize,
    onDatagram: (b, out) => void (out || recorded.push(b.slice())),
  }).dump(sockets[0]!, sink);
  const stats = new ParseStats();
  const stamp = new Stamp({ hostname: "bench-host", netns: names[0], timestamp_ns: 1n });
  const env = new EnvelopeWriter(1 << 22);
  // As the poller does: each datagram in the encoder's receive buffer (copied there first), the
  // runs of plain sockets through its batcher's fast path, flushes at the default thresholds.
  const { recv, view } = env.source(bufSize);
  const recvDv = new DataView(recv.buffer, recv.byteOffset, recv.length);
  const batch = new RowBatcher(
    env,
    { changesOnly: false, socketOwners: false },
    new NetlinkCounts(new Counters()),
    () => env.reset(),
  );
  batch.beginPoll(10_000, 786_432, 1);
  batch.stamp = stamp;
  const first = new DataView(recorded[0]!.buffer);
  const popts = { mask, expectSeq: first.getUint32(8, true), expectPid: first.getUint32(12, true) };
  const onSocket = (v: SocketView) => batch.onSocket(v);
  const onSockets: SocketRun = batch.onSockets.bind(batch);
  const pass = () => {
    for (const b of recorded) {
      recv.set(b);
      parseDatagram(view, recv, recvDv, 0, b.length, popts, stats, onSocket, onSockets);
    }
  };
  for (let i = 0; i < 3; i++) pass();
  const sockets1 = stats.sockets / 3;
  const reps = Math.max(3, Math.ceil(200_000 / Math.max(1, sockets1)));
  const before = stats.sockets;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) pass();
  const n = stats.sockets - before;
  return { sockets: sockets1, nsPerSocket: (performance.now() - t0) * 1e6 / n };
}

const out = new TextEncoder();
let rest = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  const lines = (rest + chunk).split("\n");
  rest = lines.pop() ?? "";
  for (const cmd of lines.filter((c) => c)) {
    const answer = cmd === "one"
      ? floor(true)
      : cmd === "two"
      ? floor(false)
      : cmd === "replay"
      ? replay()
      : { error: `unknown command ${cmd}` };
    Deno.stdout.writeSync(out.encode(JSON.stringify(answer) + "\n"));
  }
}
for (const s of sockets) s.close();
