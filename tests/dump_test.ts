/**
 * The dump driver's protocol handling (multipart until DONE, seq/pid checks, DUMP_INTR retry,
 * MSG_TRUNC, kernel errors), replaying datagrams the kernel really sent (a captured dump) where
 * the live kernel cannot be made to misbehave on demand. The live path is tested against the
 * real kernel in live_test.ts.
 */
import assert from "node:assert/strict";
import { NetlinkError, TruncatedDatagramError } from "../src/netlink/errors.ts";
import { Dumper, type DumpSink, type NetlinkTransport } from "../src/netlink/dump.ts";
import { NETLINK_SOCK_DIAG, pcapPackets } from "../src/netlink/pcap.ts";
import type { SocketView } from "../src/netlink/socket_view.ts";
import { FIXTURE_DIR, HAVE_FIXTURES } from "./support/fixtures.ts";

/** Reply datagrams of one captured dump per family, in order. */
function capturedReplies(path: string): Map<number, Uint8Array[]> {
  const bytes = Deno.readFileSync(path);
  const byFamily = new Map<number, Uint8Array[]>();
  let family = 0;
  for (const p of pcapPackets(bytes, path)) {
    if (p.protocol !== NETLINK_SOCK_DIAG) continue;
    const dg = bytes.slice(p.offset, p.end);
    if ((dg[6] & 0x01) !== 0) { // NLM_F_REQUEST: our request (nlmon marks both directions alike)
      family = dg[16];
      byFamily.set(family, []);
    } else byFamily.get(family)?.push(dg);
  }
  return byFamily;
}

/** Replays captured replies as if the kernel answered our request (seq and pid rewritten). */
class Replay implements NetlinkTransport {
  readonly portId = 4242;
  lastTruncated = false;
  sent: Uint8Array[] = [];
  private queue: Uint8Array[] = [];
  constructor(
    private readonly replies: Map<number, Uint8Array[]>,
    private readonly tamper: (dg: Uint8Array, family: number, attempt: number) => Uint8Array[] = (
      d,
    ) => [d],
  ) {}
  private attempts = new Map<number, number>();
  send(msg: Uint8Array): void {
    const req = msg.slice();
    this.sent.push(req);
    const dv = new DataView(req.buffer);
    const seq = dv.getUint32(8, true);
    const family = req[16];
    const attempt = this.attempts.get(family) ?? 0;
    this.attempts.set(family, attempt + 1);
    this.queue = (this.replies.get(family) ?? []).flatMap((d) =>
      this.tamper(d.slice(), family, attempt)
    )
      .map((d) => {
        const v = new DataView(d.buffer);
        for (let off = 0; off + 16 <= d.length;) {
          const len = v.getUint32(off, true);
          if (v.getUint32(off + 8, true) !== 0xdeadbeef) v.setUint32(off + 8, seq, true);
          v.setUint32(off + 12, this.portId, true);
          off += (len + 3) & ~3;
          if (len < 16) break;
        }
        return d;
      });
  }
  recv(buf: Uint8Array): number {
    const d = this.queue.shift();
    if (!d) throw new Error("replay: nothing more to receive");
    this.lastTruncated = d.length > buf.length;
    buf.set(d.subarray(0, Math.min(d.length, buf.length)));
    return Math.min(d.length, buf.length);
  }
}

class CountSink implements DumpSink {
  n = 0;
  mark = 0;
  checkpoints = 0;
  rollbacks = 0;
  ports: number[] = [];
  onSocket(v: SocketView): void {
    this.n++;
    this.ports.push(v.sport);
  }
  checkpoint(): void {
    this.checkpoints++;
    this.mark = this.n;
  }
  rollback(): void {
    this.rollbacks++;
    this.n = this.mark;
    this.ports.length = this.mark;
  }
}

const path = `${FIXTURE_DIR}/6_10_3/6_10_3_tcp_100_sockets.pcap`;
const fx = { ignore: !HAVE_FIXTURES };

Deno.test({
  ...fx,
  name: "dumps IPv4 then IPv6 until NLMSG_DONE, each request with its own seq",
  fn() {
    const replay = new Replay(capturedReplies(path));
    const sink = new CountSink();
    const d = new Dumper({ mask: -1, ext: 0xfe, seq: 666, oneWalk: false });
    const n = d.dump(replay, sink);
    assert.equal(n, 313 - 1, "socket count of the ss text");
    assert.equal(sink.n, n);
    assert.deepEqual(replay.sent.map((r) => [r[16], new DataView(r.buffer).getUint32(8, true)]), [
      [2, 666],
      [10, 667],
    ]);
    assert.equal(d.seq, 668);
    assert.equal(d.stats.seqMismatch, 0);
  },
});

Deno.test({
  ...fx,
  name: "late replies of an older dump are skipped by seq",
  fn() {
    const replay = new Replay(capturedReplies(path), (dg, family, attempt) => {
      if (family !== 2 || attempt !== 0 || dg[4] !== 20) return [dg];
      const stale = dg.slice();
      const v = new DataView(stale.buffer);
      for (let off = 0; off + 16 <= stale.length; off += (v.getUint32(off, true) + 3) & ~3) {
        v.setUint32(off + 8, 0xdeadbeef, true); // an old seq, kept as is by the replay
      }
      return [stale, dg];
    });
    const sink = new CountSink();
    const d = new Dumper({ mask: -1, ext: 0xfe, oneWalk: false });
    assert.equal(d.dump(replay, sink), 312);
    assert.ok(d.stats.seqMismatch > 0);
  },
});

Deno.test({
  ...fx,
  name: "a dump interrupted by NLM_F_DUMP_INTR is rolled back and retried",
  fn() {
    const replay = new Replay(capturedReplies(path), (dg, family, attempt) => {
      if (family === 10 && attempt === 0) {
        const v = new DataView(dg.buffer);
        v.setUint16(6, v.getUint16(6, true) | 0x10, true); // first message of each datagram
      }
      return [dg];
    });
    const sink = new CountSink();
    const d = new Dumper({ mask: -1, ext: 0xfe, oneWalk: false });
    assert.equal(d.dump(replay, sink), 312);
    assert.equal(sink.n, 312);
    assert.equal(d.intrRetries, 1);
    assert.equal(sink.rollbacks, 1);
    assert.equal(d.intrGaveUp, 0);
    // Always interrupted: retried a bounded number of times, then kept and counted.
    const always = new Replay(capturedReplies(path), (dg) => {
      const v = new DataView(dg.buffer);
      v.setUint16(6, v.getUint16(6, true) | 0x10, true);
      return [dg];
    });
    const d2 = new Dumper({ mask: -1, ext: 0xfe, maxIntrRetries: 2, oneWalk: false });
    assert.equal(d2.dump(always, new CountSink()), 312);
    assert.equal(d2.intrRetries, 4);
    assert.equal(d2.intrGaveUp, 2);
  },
});

Deno.test({
  ...fx,
  name: "a datagram larger than the receive buffer is reported as truncation",
  fn() {
    const replay = new Replay(capturedReplies(path), (dg) => {
      if (dg.length < 1000) return [dg];
      const big = new Uint8Array(40 * 1024);
      big.set(dg);
      return [big];
    });
    assert.throws(
      () => new Dumper({ mask: -1, ext: 0xfe, oneWalk: false }).dump(replay, new CountSink()),
      TruncatedDatagramError,
    );
    assert.throws(() => new Dumper({ mask: -1, ext: 0, bufferSize: 4096 }), /at least 32768/);
  },
});

Deno.test({
  ...fx,
  name: "NLMSG_ERROR from the kernel ends the dump with a NetlinkError",
  fn() {
    const replay = new Replay(capturedReplies(path), (dg, family) => {
      if (family !== 10) return [dg];
      const e = new Uint8Array(36);
      const v = new DataView(e.buffer);
      v.setUint32(0, 36, true);
      v.setUint16(4, 2, true);
      v.setInt32(16, -22, true);
      return [e];
    });
    assert.throws(
      () => new Dumper({ mask: -1, ext: 0xfe, oneWalk: false }).dump(replay, new CountSink()),
      (e: unknown) => e instanceof NetlinkError && e.errno === 22 && e.code === "EINVAL",
    );
  },
});
