/**
 * Decode and encode cost per socket, replayed from captured dumps (the shared fixtures of kernels
 * 4.19–6.10 and this project's own captures). Each bench iteration is one pass over every
 * socket; `bench/report.ts` divides by the socket count to get ns/socket.
 */
import { toBinary } from "@bufbuild/protobuf";
import { XtcpFlatRecordSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { parseDatagram, ParseStats } from "../src/netlink/parse.ts";
import { NETLINK_SOCK_DIAG, pcapPackets } from "../src/netlink/pcap.ts";
import { SocketView } from "../src/netlink/socket_view.ts";
import { SocketChanges } from "../src/poll/changes.ts";
import { EnvelopeWriter } from "../src/record/encoder.ts";
import { Stamp } from "../src/record/stamp.ts";
import { recordJson, recordMessage } from "../src/record/values.ts";
import { allSharedPcaps, ownCaptures } from "../tests/support/fixtures.ts";

interface Datagram {
  u8: Uint8Array;
  dv: DataView;
}

const datagrams: Datagram[] = [];
for (const f of [...allSharedPcaps(), ...ownCaptures().map((c) => c.pcap)]) {
  const bytes = Deno.readFileSync(f);
  for (const p of pcapPackets(bytes, f)) {
    if (p.protocol !== NETLINK_SOCK_DIAG) continue;
    const u8 = new Uint8Array(new ArrayBuffer(p.end - p.offset));
    u8.set(bytes.subarray(p.offset, p.end));
    datagrams.push({ u8, dv: new DataView(u8.buffer) });
  }
}

const view = new SocketView();
const stats = new ParseStats();
const opts = { mask: -1, expectSeq: -1, expectPid: -1 };
const stamp = new Stamp({
  daemon_version: "0.1.0",
  hostname: "bench-host",
  netns: "default",
  netns_inode: 4026531840n,
  timestamp_ns: 1_700_000_000_000_000_000n,
});

function pass(onSocket: (v: SocketView) => void): number {
  let n = 0;
  for (const d of datagrams) {
    parseDatagram(view, d.u8, d.dv, 0, d.u8.length, opts, stats, (v) => {
      n++;
      onSocket(v);
    });
  }
  return n;
}

/** Sockets in one pass (printed so the report can divide). */
export const SOCKETS = pass(() => {});
console.error(`bench corpus: ${datagrams.length} datagrams, ${SOCKETS} sockets`);

const env = new EnvelopeWriter(1 << 22);
let sink = 0;

Deno.bench({
  name: `parse only (locate attributes) x${SOCKETS}`,
  group: "per-socket",
  baseline: true,
  fn() {
    pass(() => {});
  },
});

Deno.bench({
  name: `parse + fast encode (protobufList rows) x${SOCKETS}`,
  group: "per-socket",
  fn() {
    env.reset();
    pass((v) => env.add(v, stamp));
    sink += env.byteLength;
  },
});

Deno.bench({
  name: `parse + JSON line (allocating path) x${SOCKETS}`,
  group: "per-socket",
  fn() {
    pass((v) => {
      sink += recordJson(v, stamp).length;
    });
  },
});

Deno.bench({
  name: `parse + create + toBinary (@bufbuild/protobuf) x${SOCKETS}`,
  group: "per-socket",
  fn() {
    pass((v) => {
      sink += toBinary(XtcpFlatRecordSchema, recordMessage(v, stamp)).length;
    });
  },
});

const changes = new SocketChanges();
Deno.bench({
  name: `parse + --changesOnly table (hash, lookup; idle: nothing written) x${SOCKETS}`,
  group: "per-socket",
  fn() {
    changes.begin();
    pass((v) => {
      if (changes.changed(v)) sink++;
    });
    changes.sweep(() => sink++);
  },
});

addEventListener("unload", () => {
  if (sink < 0) console.log(sink);
});
