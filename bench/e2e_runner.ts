/**
 * The measuring half of the end-to-end benchmark (bench/e2e.ts starts it, under
 * `--v8-flags=--trace-gc,--expose-gc`, once per case). In one process, against the namespaces it
 * is given, it measures per poll:
 *
 * - floor: the same netlink dump through the same FFI socket and buffer, receive only (the
 *   datagrams are walked for NLMSG_DONE, nothing is decoded);
 * - full: `Poller.pollOnce()` as the daemon runs it (IPv4 and IPv6 dumps, decode, encode,
 *   protobufList envelopes, destination null);
 * - replay: parse + encode of one recorded full dump, from memory (no kernel).
 *
 * Wall time (performance.now) and CPU time (getrusage of the process: user + sys, all threads,
 * which includes the kernel's work inside recvmsg). Writes one JSON object to `--out`.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import type { NetlinkSocket } from "../ffi/netlink_socket.ts";
import { decoderMask, pollSettings, recvBufferSize } from "../src/config/derive.ts";
import { defaultConfig } from "../src/config/load.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { msToDuration } from "../src/util/duration.ts";
import { NullDest } from "../src/dest/null.ts";
import { InPlaceDelivery } from "../src/dest/queue.ts";
import { marshaller } from "../src/format/marshal.ts";
import { idiagExt } from "../src/netlink/deserializers.ts";
import { parseDatagram, ParseStats } from "../src/netlink/parse.ts";
import { writeDumpRequest } from "../src/netlink/request.ts";
import { SocketView } from "../src/netlink/socket_view.ts";
import { Poller } from "../src/poll/poller.ts";
import { EnvelopeWriter } from "../src/record/encoder.ts";
import { Stamp } from "../src/record/stamp.ts";
import { registryOver } from "../tests/support/registry.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    ns: { type: "string" },
    polls: { type: "string", default: "20" },
    warmup: { type: "string", default: "5" },
    out: { type: "string" },
    idle: { type: "string", default: "0" },
  },
});
if (!values.ns || !values.out) throw new Error("usage: e2e_runner.ts --ns NAME[,NAME…] --out FILE");
const names = values.ns.split(",");
const polls = Number(values.polls);
const warmup = Number(values.warmup);

/** One measured poll. */
interface Sample {
  wallMs: number;
  cpuMs: number;
}

function measure(fn: () => void): Sample {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wallMs, cpuMs: (c.user + c.system) / 1000 };
}

async function measureAsync(fn: () => Promise<unknown>): Promise<Sample> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wallMs, cpuMs: (c.user + c.system) / 1000 };
}

const gc = (globalThis as { gc?: () => void }).gc;
/**
 * Between polls: timers and microtasks run; `--idle MS` also sleeps (on this kind of VM a poll
 * after ≥100 ms idle pays a few ms of cold CPU, more for JS than for the kernel's dump).
 */
const idleMs = Number(values.idle);
const settle = () => new Promise((r) => setTimeout(r, idleMs));

// Calibration: a forced GC at a known time ties V8's trace timestamps to performance.now().
gc?.();
const calibrationMs = performance.now();
await new Promise((r) => setTimeout(r, 50));

const cfg = defaultConfig();
cfg.marshalTo = "protobufList";
cfg.dest = "null";
// One poll of every namespace, however long it takes (the default timeout would cut it short).
cfg.pollFrequency = msToDuration(3_600_000);
cfg.pollTimeout = msToDuration(3_000_000);
const mask = decoderMask(cfg);
const ext = idiagExt(mask);
const bufSize = recvBufferSize(cfg);
const counters = new Counters();
const log = new Logger(0);
// The daemon's registry over exactly these namespaces, its sockets shared with the floor.
const registry = registryOver(names, log, counters);
const sockets: NetlinkSocket[] = [...registry.states.values()].map((st) => st.socket);

// Floor: request, then receive until NLMSG_DONE, nothing else.
const recvBuf = new Uint8Array(new ArrayBuffer(bufSize));
const recvDv = new DataView(recvBuf.buffer);
const req = new Uint8Array(new ArrayBuffer(72));
let seq = 1;
function floorDump(s: NetlinkSocket, family: number): number {
  writeDumpRequest(req, 0, { family, ext, seq: seq++ });
  s.send(req);
  let datagrams = 0;
  for (;;) {
    const n = s.recv(recvBuf);
    datagrams++;
    for (let off = 0; off + 16 <= n;) {
      const len = recvDv.getUint32(off, true);
      const type = recvDv.getUint16(off + 4, true);
      if (type === 3 || type === 2) return datagrams; // NLMSG_DONE, NLMSG_ERROR
      if (len < 16) throw new Error(`bad nlmsg_len ${len}`);
      off += (len + 3) & ~3;
    }
  }
}
function floorPoll(): void {
  for (const s of sockets) {
    floorDump(s, 2);
    floorDump(s, 10);
  }
}

// Full: the daemon's Poller over exactly these namespaces.
const recorded: Uint8Array[] = [];
let recording = false;
const nullDest = new NullDest();
/** A poller over exactly these namespaces, as the daemon builds one, destination null. */
const makePoller = (config: typeof cfg, onDatagram?: (b: Uint8Array, out: boolean) => void) =>
  new Poller({
    settings: pollSettings(config, { hostname: "bench-host", version: "bench" }),
    registry,
    delivery: new InPlaceDelivery(nullDest, "message", counters, log),
    marshaller: marshaller(cfg.marshalTo),
    log,
    counters,
    ...(onDatagram ? { onDatagram } : {}),
  });
const poller = makePoller(cfg, (b, out) => {
  if (recording && !out) recorded.push(b.slice());
});
// The same poll with netlink receives through io_uring (--ioUring).
const uringPoller = makePoller({ ...cfg, ioUring: true });
// The same poll pipelined: decode and encode in a worker while this thread receives.
const pipePoller = makePoller({ ...cfg, pipeline: true });

const result = {
  names: names.length,
  sockets: 0,
  calibrationMs,
  /** [start, end] of each measured full poll (performance.now ms). */
  fullWindows: [] as [number, number][],
  intrRetries: 0,
  floor: [] as Sample[],
  full: [] as Sample[],
  fullUring: [] as Sample[],
  fullPipeline: [] as Sample[],
  uring: { available: uringPoller.uring !== undefined, enters: 0, packets: 0 },
  replay: { sockets: 0, nsPerSocket: 0 },
  rssMaxMb: 0,
};
const rss = () => {
  result.rssMaxMb = Math.max(result.rssMaxMb, Deno.memoryUsage().rss / 1048576);
};

// Floor and full polls alternate, so drift (caches, other load) hits both alike.
for (let i = 0; i < warmup; i++) {
  floorPoll();
  await poller.pollOnce();
  if (result.uring.available) await uringPoller.pollOnce();
  await pipePoller.pollOnce();
}
await settle();
for (let i = 0; i < polls; i++) {
  result.floor.push(measure(floorPoll));
  await settle();
  const t0 = performance.now();
  let sockets = 0;
  result.full.push(await measureAsync(async () => (sockets = (await poller.pollOnce()).sockets)));
  result.fullWindows.push([t0, performance.now()]);
  result.sockets = sockets;
  rss();
  await settle();
  if (result.uring.available) {
    result.fullUring.push(await measureAsync(() => uringPoller.pollOnce()));
    await settle();
  }
  const tp = performance.now();
  result.fullPipeline.push(await measureAsync(() => pipePoller.pollOnce()));
  result.fullWindows.push([tp, performance.now()]);
  rss();
  await settle();
}
pipePoller[Symbol.dispose]();
if (uringPoller.uring) {
  result.uring.enters = uringPoller.uring.enters;
  result.uring.packets = uringPoller.uring.stats.packets;
}
uringPoller[Symbol.dispose]();
result.intrRetries = poller.dumpStats.intrRetries;

// Replay: one full dump recorded, then parsed + encoded from memory.
recording = true;
await poller.pollOnce();
recording = false;
{
  const view = new SocketView();
  const stats = new ParseStats();
  const stamp = new Stamp({ hostname: "bench-host", netns: names[0], timestamp_ns: 1n });
  const env = new EnvelopeWriter(1 << 22);
  const dvs = recorded.map((b) => new DataView(b.buffer));
  let n = 0;
  const onSocket = (v: SocketView) => {
    n++;
    env.add(v, stamp);
    if (env.byteLength > 786432) env.reset();
  };
  const pass = () => {
    for (let i = 0; i < recorded.length; i++) {
      parseDatagram(
        view,
        recorded[i],
        dvs[i],
        0,
        recorded[i].length,
        {
          mask,
          expectSeq: -1,
          expectPid: -1,
        },
        stats,
        onSocket,
      );
    }
  };
  for (let i = 0; i < 3; i++) pass();
  const reps = Math.max(3, Math.ceil(200_000 / Math.max(1, result.sockets)));
  n = 0;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) pass();
  result.replay = { sockets: n / reps, nsPerSocket: (performance.now() - t0) * 1e6 / n };
}
rss();
for (const s of sockets) s.close();
Deno.writeTextFileSync(values.out, JSON.stringify(result));
