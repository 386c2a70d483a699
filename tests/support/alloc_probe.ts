/**
 * Replays the hot path (parseDatagram + RecordEncoder into an EnvelopeWriter) many times between
 * two markers; run with `--v8-flags=--trace-gc`, the garbage collections printed between the
 * markers show whether the hot path allocates.
 *
 *   alloc_probe.ts CAPTURE PASSES [plain|rows|inplace]
 *
 * `inplace`: each datagram received in the encoder's own memory, as the poller does.
 *
 * `rows`: through the RowFilter as `--changesOnly --socketOwners` use it: each pass is a poll
 * (every other one a snapshot), one socket in seven is missing from it in turn (close records,
 * removals and insertions every pass), owners come from a cache filled once (a scan of the
 * capture's inodes: /proc is not this probe's).
 */
import { parseDatagram, ParseStats } from "../../src/netlink/parse.ts";
import { NETLINK_SOCK_DIAG, pcapPackets } from "../../src/netlink/pcap.ts";
import { SocketView } from "../../src/netlink/socket_view.ts";
import { RowFilter } from "../../src/poll/rows.ts";
import { SocketOwners } from "../../src/poll/socket_owners.ts";
import { EnvelopeWriter } from "../../src/record/encoder.ts";
import { Stamp } from "../../src/record/stamp.ts";

const [path, passesText, mode = "plain"] = Deno.args;
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
// "inplace": as the poller does, each datagram in the encoder's own receive buffer.
const inPlace = mode === "inplace" ? env.source(1 << 16) : undefined;
const view = inPlace?.view ?? new SocketView();
const recvDv = inPlace && new DataView(inPlace.recv.buffer, inPlace.recv.byteOffset);
const walk = (onSocket: (v: SocketView) => void) => {
  for (const d of dgs) {
    if (inPlace && recvDv) {
      inPlace.recv.set(d.u8);
      parseDatagram(view, inPlace.recv, recvDv, 0, d.u8.length, opts, stats, onSocket);
    } else {
      parseDatagram(view, d.u8, d.dv, 0, d.u8.length, opts, stats, onSocket);
    }
  }
};
let pass: () => void;
if (mode === "rows") {
  const inodes = new Set<number>();
  walk((v) => inodes.add(v.inode));
  const comm = new TextEncoder().encode("probe");
  const owners = new SocketOwners(
    (onSocket) => {
      for (const inode of inodes) onSocket(inode, 1000 + (inode % 50));
      return { processes: 50, fds: inodes.size, sockets: inodes.size, resumeAfter: 0 };
    },
    () => comm,
  );
  const rows = new RowFilter(
    { changesOnly: true, socketOwners: true },
    (v, x) => env.add(v, stamp, x),
    owners,
  );
  let n = 0;
  let skip = 0;
  const onSocket = (v: SocketView) => {
    if (n++ % 7 === skip) return; // missing from this poll
    if (rows.wanted(v)) env.add(v, stamp, rows.extraFor(v));
  };
  let loop = 0;
  pass = () => {
    env.reset();
    rows.beginPoll(loop % 2 === 0);
    rows.beginNamespace(1);
    n = 0;
    skip = loop % 7;
    walk(onSocket);
    rows.endNamespace(true);
    loop++;
  };
} else {
  const onSocket = (v: SocketView) => env.add(v, stamp);
  pass = () => {
    env.reset();
    walk(onSocket);
  };
}
for (let i = 0; i < 200; i++) pass(); // warm up: optimise, grow buffers
console.log("MARK-BEGIN");
const passes = Number(passesText);
for (let i = 0; i < passes; i++) pass();
console.log("MARK-END");
console.log(`sockets ${stats.sockets}`);
