/**
 * Replays the hot path (parseDatagram + RecordEncoder into an EnvelopeWriter) many times between
 * two markers; run with `--v8-flags=--trace-gc`, the garbage collections printed between the
 * markers show whether the hot path allocates.
 */
import { parseDatagram, ParseStats } from "../../src/netlink/parse.ts";
import { NETLINK_SOCK_DIAG, pcapPackets } from "../../src/netlink/pcap.ts";
import { SocketView } from "../../src/netlink/socket_view.ts";
import { EnvelopeWriter } from "../../src/record/encoder.ts";
import { Stamp } from "../../src/record/stamp.ts";

const [path, passesText, mode] = Deno.args;
const bytes = Deno.readFileSync(path);
const dgs: { u8: Uint8Array; dv: DataView }[] = [];
for (const p of pcapPackets(bytes, path)) {
  if (p.protocol !== NETLINK_SOCK_DIAG) continue;
  const u8 = new Uint8Array(new ArrayBuffer(p.end - p.offset));
  u8.set(bytes.subarray(p.offset, p.end));
  dgs.push({ u8, dv: new DataView(u8.buffer) });
}
const stats = new ParseStats();
const opts = { mask: -1, expectSeq: -1, expectPid: -1 };
const stamp = new Stamp({ hostname: "h", netns: "default", timestamp_ns: 1n });
const env = new EnvelopeWriter(1 << 24);
const onSocket = (v: SocketView) => env.add(v, stamp);
// "inplace": as the poller does, each datagram in the encoder's own receive buffer.
const inPlace = mode === "inplace" ? env.source(1 << 16) : undefined;
const view = inPlace?.view ?? new SocketView();
const recvDv = inPlace && new DataView(inPlace.recv.buffer, inPlace.recv.byteOffset);
const pass = () => {
  env.reset();
  for (const d of dgs) {
    if (inPlace && recvDv) {
      inPlace.recv.set(d.u8);
      parseDatagram(view, inPlace.recv, recvDv, 0, d.u8.length, opts, stats, onSocket);
    } else {
      parseDatagram(view, d.u8, d.dv, 0, d.u8.length, opts, stats, onSocket);
    }
  }
};
for (let i = 0; i < 200; i++) pass(); // warm up: optimise, grow buffers
console.log("MARK-BEGIN");
const passes = Number(passesText);
for (let i = 0; i < passes; i++) pass();
console.log("MARK-END");
console.log(`sockets ${stats.sockets}`);
