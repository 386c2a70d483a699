/**
 * One walk: on a live namespace with IPv4 and IPv6 connections, the compat request
 * (TCPDIAG_GETSOCK, AF_UNSPEC: both families from one walk of the kernel's TCP tables) yields
 * exactly the socket set and the stable fields of the two v2 requests; the request on the wire
 * says which one was used; a transport whose kernel refuses the compat request falls back to the
 * v2 requests and stays with them.
 */
import assert from "node:assert/strict";
import { openNetlinkSocketIn } from "../ffi/netns.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK } from "../src/netlink/constants.ts";
import { idiagExt, parseDeserializers } from "../src/netlink/deserializers.ts";
import { Dumper, type NetlinkTransport } from "../src/netlink/dump.ts";
import { type Rec, recKey, RecSink } from "./support/records.ts";

/** Fields that do not move between two dumps a moment apart. */
const STABLE = [
  "inet_diag_msg_family",
  "inet_diag_msg_state",
  "inet_diag_msg_socket_source_port",
  "inet_diag_msg_socket_destination_port",
  "inet_diag_msg_socket_cookie",
  "inet_diag_msg_uid",
  "inet_diag_msg_inode",
  "congestion_algorithm_string",
  "tcp_info_snd_mss",
];

Deno.test({
  name:
    "live: one compat walk (AF_UNSPEC) gives the socket set and fields of the two v2 walks, IPv4 and IPv6",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 500, ipv6Fraction: 0.5, bytes: 100 });
    using sock = openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 2000 });
    const mask = parseDeserializers("all");
    const requests: number[] = [];
    const onDatagram = (b: Uint8Array, out: boolean) => {
      if (out) requests.push(new DataView(b.buffer, b.byteOffset).getUint16(4, true));
    };
    const one = new Dumper({ mask, ext: idiagExt(mask), onDatagram });
    const ones = new RecSink();
    const n1 = one.dump(sock, ones);
    assert.deepEqual(requests.splice(0), [TCPDIAG_GETSOCK], "one request, the compat one");
    assert.deepEqual(one.walks, { one: 1, two: 0 });
    const two = new Dumper({ mask, ext: idiagExt(mask), oneWalk: false, onDatagram });
    const twos = new RecSink();
    const n2 = two.dump(sock, twos);
    assert.deepEqual(requests, [SOCK_DIAG_BY_FAMILY, SOCK_DIAG_BY_FAMILY], "two v2 requests");
    assert.equal(n1, n2);
    assert.ok(n1 >= 1000 + load.listeners, `${n1} sockets`);
    const byKey = (recs: Rec[]) => new Map(recs.map((r) => [recKey(r), r]));
    const a = byKey(ones.recs);
    const b = byKey(twos.recs);
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), "the same socket set");
    const fam = { v4: 0, v6: 0 };
    for (const [k, r] of a) {
      r.get("inet_diag_msg_family") === 10 ? fam.v6++ : fam.v4++;
      const other = b.get(k);
      for (const f of STABLE) assert.equal(r.get(f), other?.get(f), `${k}: ${f}`);
    }
    assert.ok(fam.v4 >= 400 && fam.v6 >= 400, `both families: ${JSON.stringify(fam)}`);
  },
});

Deno.test({
  name:
    "a kernel that refuses the compat request: the dump falls back to the v2 requests and keeps them for that socket",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 20, bytes: 10 });
    using sock = openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 2000 });
    // A real kernel refusal: the compat request goes out with a filter (INET_DIAG_REQ_BYTECODE)
    // whose one operation has no meaning, which the kernel's bytecode audit answers with EINVAL.
    const refusing: NetlinkTransport = {
      portId: sock.portId,
      send: (msg) => {
        const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
        if (dv.getUint16(4, true) !== TCPDIAG_GETSOCK) return sock.send(msg);
        const bad = new Uint8Array(msg.length + 8);
        bad.set(msg);
        const bd = new DataView(bad.buffer);
        bd.setUint32(0, bad.length, true); // nlmsg_len
        bd.setUint16(msg.length, 8, true); // rta_len
        bd.setUint16(msg.length + 2, 1, true); // rta_type INET_DIAG_REQ_BYTECODE
        bd.setUint8(msg.length + 4, 0xff); // op code: none
        bd.setUint8(msg.length + 5, 4); // yes
        bd.setUint16(msg.length + 6, 8, true); // no
        sock.send(bad);
      },
      recv: (buf) => sock.recv(buf),
      get lastTruncated() {
        return sock.lastTruncated;
      },
    };
    const mask = parseDeserializers("default");
    const d = new Dumper({ mask, ext: idiagExt(mask) });
    const sink = new RecSink();
    const n = d.dump(refusing, sink);
    assert.equal(d.compatRefused, 1, "the compat request was refused");
    assert.deepEqual(d.walks, { one: 0, two: 1 });
    assert.equal(n, sink.recs.length);
    assert.ok(n >= 40 + load.listeners, `${n} sockets from the v2 requests`);
    d.dump(refusing, new RecSink());
    assert.equal(d.compatRefused, 1, "not asked again on that socket");
    assert.deepEqual(d.walks, { one: 0, two: 2 });
  },
});
