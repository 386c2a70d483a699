/**
 * The poller's fast path against its per-socket path, on the real Poller. The fast path
 * (Poller.onSockets → EnvelopeWriter.run) parses, locates and encodes a run of plain socket
 * messages in one WebAssembly call; the per-socket path (parseDatagram → onSocket →
 * EnvelopeWriter.add) is what the fast path leaves every unusual message to, and what it must
 * equal. Both pollers are fed the same bytes: every shared and own capture, each dump also with
 * broken attributes and with odd messages put in (NLM_F_DUMP_INTR, another port id, another
 * type, a request), replayed by a transport that answers each dump request with the next dump
 * (its messages given the request's seq and the socket's port id). What both deliver (every
 * flush, byte for byte but the stamp's time) and count must be equal. Small envelopes make
 * flushes land inside datagrams and inside runs; a delivery that holds loans (released out of
 * order) makes rows land next to lent regions, where the writer must move the envelope.
 */
import assert from "node:assert/strict";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { NetlinkSocket } from "../ffi/netlink_socket.ts";
import { defaultHome } from "../ffi/netns.ts";
import { pollSettings } from "../src/config/derive.ts";
import { defaultConfig } from "../src/config/load.ts";
import type { Backlog, Delivery } from "../src/dest/queue.ts";
import { marshaller } from "../src/format/marshal.ts";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import {
  INET_DIAG_CLASS_ID,
  INET_DIAG_SHUTDOWN,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
} from "../src/netlink/constants.ts";
import type { NetlinkTransport } from "../src/netlink/dump.ts";
import { parseDatagram, ParseStats, type SocketRun } from "../src/netlink/parse.ts";
import { NamespaceRegistry } from "../src/netns/registry.ts";
import { RowBatcher } from "../src/poll/batch.ts";
import { NetlinkCounts } from "../src/poll/netlink_counts.ts";
import { Poller, type PollerDeps } from "../src/poll/poller.ts";
import { EnvelopeWriter } from "../src/record/encoder.ts";
import { Stamp } from "../src/record/stamp.ts";
import { msToDuration } from "../src/util/duration.ts";
import type { Lease } from "../src/util/lease.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { allSharedPcaps, datagrams, HAVE_FIXTURES, ownCaptures } from "./support/fixtures.ts";

const PORT_ID = 4242;

/** A change to a dump's bytes after its messages got the request's seq and port id. */
type Tweak = (dg: Uint8Array, dv: DataView, seq: number) => void;

/** The offsets of a datagram's netlink messages. */
function messages(dg: Uint8Array, dv: DataView): number[] {
  const out: number[] = [];
  for (let off = 0; off + NLMSG_HDRLEN <= dg.length;) {
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN) break;
    out.push(off);
    off += (len + 3) & ~3;
  }
  return out;
}

/** Answers each dump request with the next dump of `dumps` (then with an empty one). */
class Replay implements NetlinkTransport {
  readonly portId = PORT_ID;
  readonly lastTruncated = false;
  readonly fd = 99;
  private queue: Uint8Array[] = [];
  private tweak: Tweak | undefined;
  private seq = 0;
  constructor(private readonly dumps: { dgs: Uint8Array[]; tweak?: Tweak }[]) {}
  send(msg: Uint8Array): void {
    this.seq = new DataView(msg.buffer, msg.byteOffset).getUint32(8, true);
    const next = this.dumps.shift();
    this.queue = next ? [...next.dgs] : [done()];
    this.tweak = next?.tweak;
  }
  recv(buf: Uint8Array): number {
    const dg = this.queue.shift();
    if (!dg) throw new Error("the replayed dump has no NLMSG_DONE");
    buf.set(dg);
    const view = buf.subarray(0, dg.length);
    const dv = new DataView(buf.buffer, buf.byteOffset, dg.length);
    for (const off of messages(view, dv)) {
      dv.setUint32(off + 8, this.seq, true);
      dv.setUint32(off + 12, PORT_ID, true);
    }
    this.tweak?.(view, dv, this.seq);
    return dg.length;
  }
  close(): void {}
}

/** A datagram holding only NLMSG_DONE. */
function done(): Uint8Array {
  const dg = new Uint8Array(20);
  const dv = new DataView(dg.buffer);
  dv.setUint32(0, 20, true);
  dv.setUint16(4, NLMSG_DONE, true);
  return dg;
}

/** Keeps a copy of every flush; holds up to 3 loans, released in a changing order. */
class Recording implements Delivery {
  readonly scheme = "test";
  readonly inPlace = false;
  readonly flushes: { bytes: Uint8Array; rows: number }[] = [];
  /** Loans whose bytes changed before they were released. */
  overwritten = 0;
  private readonly held: { lease: Lease; view: Uint8Array; copy: Uint8Array }[] = [];
  constructor(readonly lends: number) {}
  deliver(bytes: Uint8Array, rows: number, _owned: boolean, lease?: Lease): void {
    const copy = bytes.slice();
    this.flushes.push({ bytes: copy, rows });
    if (!lease) return;
    this.held.push({ lease, view: bytes, copy });
    if (this.held.length > 3) this.release(this.held.splice(this.flushes.length % 3, 1)[0]!);
  }
  private release(h: { lease: Lease; view: Uint8Array; copy: Uint8Array }): void {
    if (h.view.some((b, i) => b !== h.copy[i])) this.overwritten++;
    h.lease.release();
  }
  room(): Promise<void> {
    return Promise.resolve();
  }
  backlog(): Backlog | undefined {
    return undefined;
  }
  beginPoll(): void {}
  [Symbol.asyncDispose](): Promise<void> {
    for (const h of this.held.splice(0)) this.release(h);
    return Promise.resolve();
  }
}

/** The poller with its fast path refused: every socket goes through onSocket. */
class PerSocketPoller extends Poller {
  override onSockets(...[, off]: Parameters<SocketRun>): number {
    return off;
  }
}

/** The real poller, counting the sockets its fast path took. */
class CountingPoller extends Poller {
  static taken = 0;
  override onSockets(...run: Parameters<SocketRun>): number {
    const stats = run[4];
    const before = stats.sockets;
    const next = super.onSockets(...run);
    CountingPoller.taken += stats.sockets - before;
    return next;
  }
}

/** Each reply dump of the captures (requests dropped; a dump ends with its NLMSG_DONE). */
function captureDumps(): Uint8Array[][] {
  const paths = [...allSharedPcaps(), ...ownCaptures().map((c) => c.pcap)];
  const dumps: Uint8Array[][] = [];
  for (const path of paths) {
    let dump: Uint8Array[] = [];
    for (const dg of datagrams(path)) {
      const dv = new DataView(dg.buffer);
      const offs = messages(dg, dv);
      if (offs.length === 0 || (dv.getUint16(6, true) & NLM_F_REQUEST) !== 0) continue;
      dump.push(dg);
      if (offs.some((o) => dv.getUint16(o + 4, true) === NLMSG_DONE)) {
        dumps.push(dump);
        dump = [];
      }
    }
  }
  return dumps;
}

/** Each message but the first few of the datagram, at `every`: `f` changes its header. */
function everyMessage(every: number, f: (dv: DataView, off: number, seq: number) => void): Tweak {
  return (dg, dv, seq) => {
    const offs = messages(dg, dv);
    for (let i = 2; i < offs.length; i += every) {
      if (dv.getUint16(offs[i]! + 4, true) !== NLMSG_DONE) f(dv, offs[i]!, seq);
    }
  };
}

/** The dumps as captured, then with broken attributes, then with odd messages put in. */
function variants(dumps: Uint8Array[][]): { dgs: Uint8Array[]; tweak?: Tweak }[] {
  const breakAttrs = (k: number): Tweak => (dg, dv) => {
    for (const off of messages(dg, dv)) {
      const end = off + dv.getUint32(off, true);
      for (let i = off + NLMSG_HDRLEN + 72 + k * 7; i < end; i += 97 * k) dg[i]! ^= 0x5a << (k - 1);
    }
  };
  // An attribute of every other message given another type: one that is shorter than the
  // struct of its new type (attrShort), or one no decoder wants (attrSkipped).
  const retype = (from: number, to: number): Tweak => (dg, dv) => {
    for (const [i, off] of messages(dg, dv).entries()) {
      if (i % 2) continue;
      const end = off + dv.getUint32(off, true);
      for (let a = off + NLMSG_HDRLEN + 72; a + 4 <= end;) {
        const len = dv.getUint16(a, true);
        if (len < 4) break;
        if (dv.getUint16(a + 2, true) === from) dv.setUint16(a + 2, to, true);
        a += (len + 3) & ~3;
      }
    }
  };
  const tweaks: (Tweak | undefined)[] = [
    retype(INET_DIAG_SHUTDOWN, INET_DIAG_CLASS_ID),
    retype(INET_DIAG_SHUTDOWN, 30),
    undefined,
    breakAttrs(1),
    breakAttrs(2),
    everyMessage(11, (dv, o) => dv.setUint32(o + 12, PORT_ID + 1, true)),
    everyMessage(13, (dv, o) => dv.setUint16(o + 4, NLMSG_NOOP, true)),
    everyMessage(
      17,
      (dv, o) => dv.setUint16(o + 6, dv.getUint16(o + 6, true) | NLM_F_REQUEST, true),
    ),
    everyMessage(19, (dv, o, seq) => dv.setUint32(o + 8, seq + 1, true)),
  ];
  const out: { dgs: Uint8Array[]; tweak?: Tweak }[] = [];
  for (const dgs of dumps) {
    for (const tweak of tweaks) out.push({ dgs, ...(tweak ? { tweak } : {}) });
  }
  // NLM_F_DUMP_INTR on one message: the dump is retried (3 times), then given up.
  const intr = everyMessage(
    1000,
    (dv, o) => dv.setUint16(o + 6, dv.getUint16(o + 6, true) | NLM_F_DUMP_INTR, true),
  );
  for (const dgs of dumps.slice(0, 8)) for (let i = 0; i < 4; i++) out.push({ dgs, tweak: intr });
  return out;
}

/** Every flush with the stamp's time cleared (it is the only field the two pollers differ in). */
function timeless(flushes: { bytes: Uint8Array; rows: number }[]): Uint8Array[] {
  return flushes.map(({ bytes }) => {
    let i = 0;
    while (bytes[i]! & 0x80) i++;
    const e = fromBinary(EnvelopeSchema, bytes.subarray(i + 1));
    for (const r of e.row) r.timestampNs = 0n;
    return toBinary(EnvelopeSchema, e);
  });
}

/** Polls `dumps` with a poller of `kind`: what it delivered, counted and parsed. */
async function pollAll(
  kind: typeof Poller,
  dumps: { dgs: Uint8Array[]; tweak?: Tweak }[],
  envelope: { rows: number; bytes: number },
  lends: number,
) {
  const counters = new Counters();
  const log = new Logger(0, () => {});
  using registry = new NamespaceRegistry({
    home: defaultHome(),
    selfInode: 0n,
    rcvTimeoutMs: 1000,
    log,
    counters,
  });
  const polls = dumps.length;
  const replay = new Replay(dumps);
  registry.states.set(1n, {
    info: { inode: 1n, name: "replay", path: "/nonexistent" },
    socket: replay as unknown as NetlinkSocket,
  });
  const cfg = defaultConfig();
  cfg.dest = "null";
  cfg.pollFrequency = msToDuration(60_000);
  cfg.pollTimeout = msToDuration(60_000);
  cfg.envelopeFlushThresholdRows = envelope.rows;
  cfg.envelopeFlushThresholdBytes = envelope.bytes;
  await using delivery = new Recording(lends);
  const deps: PollerDeps = {
    settings: pollSettings(cfg, { hostname: "walk-test", version: "test" }),
    registry,
    delivery,
    marshaller: marshaller("protobufList"),
    log,
    counters,
  };
  using poller = new kind(deps);
  let sockets = 0;
  for (let i = 0; i < polls; i++) sockets += (await poller.pollOnce()).sockets;
  assert.equal(delivery.overwritten, 0, "loans written over before their release");
  return {
    flushes: delivery.flushes,
    sizes: delivery.flushes.map((f) => [f.bytes.length, f.rows]),
    counters: [...counters.values].filter(([k]) => !/ms|Ms|seconds|duration/i.test(k)).sort(),
    stats: { ...poller.dumpStats.stats },
    sockets,
  };
}

for (
  const { name, envelope, lends } of [
    { name: "default envelopes", envelope: { rows: 0, bytes: 0 }, lends: 0 },
    {
      name: "small envelopes (flushes inside runs)",
      envelope: { rows: 37, bytes: 9000 },
      lends: 0,
    },
    {
      name: "small envelopes, 3 loans held (rows next to lent regions)",
      envelope: { rows: 53, bytes: 6000 },
      lends: 1 << 20,
    },
  ]
) {
  Deno.test({
    name:
      `the poller's fast path equals its per-socket path on every capture, broken and odd too: ${name}`,
    ignore: !HAVE_FIXTURES && ownCaptures().length === 0,
    async fn() {
      const dumps = variants(captureDumps());
      CountingPoller.taken = 0;
      const fast = await pollAll(CountingPoller, dumps.map((d) => ({ ...d })), envelope, lends);
      const slow = await pollAll(PerSocketPoller, dumps.map((d) => ({ ...d })), envelope, lends);
      assert.ok(slow.sockets > 5000, `only ${slow.sockets} sockets`);
      assert.ok(slow.stats.attrErrors > 100, `only ${slow.stats.attrErrors} broken attributes`);
      const st = slow.stats;
      assert.ok(st.dumpIntr > 0 && st.pidMismatch > 0 && st.requests > 0 && st.seqMismatch > 0);
      assert.ok(st.attrShort > 1000 && st.attrSkipped > 1000, `${st.attrShort}, ${st.attrSkipped}`);
      assert.equal(fast.sockets, slow.sockets);
      assert.ok(
        CountingPoller.taken > 0.8 * fast.sockets,
        `the fast path took ${CountingPoller.taken} of ${fast.sockets} sockets`,
      );
      assert.deepEqual(fast.stats, slow.stats, "parse counters");
      assert.deepEqual(fast.counters, slow.counters, "the poller's counters");
      assert.deepEqual(fast.sizes, slow.sizes, "flush sizes and rows");
      assert.deepEqual(timeless(fast.flushes), timeless(slow.flushes), "flushes");
    },
  });
}

Deno.test({
  name:
    "a run stops where the writer's buffer ends (one WebAssembly page, no flush), and leaves it to add to grow it: the rows are add's",
  ignore: !HAVE_FIXTURES && ownCaptures().length === 0,
  fn() {
    const stamp = new Stamp({ hostname: "walk-test", netns: "replay", timestamp_ns: 1n });
    // Its buffer is the whole of its memory: a row written past its end would trap.
    const envelopes = (fast: boolean) => {
      const env = new EnvelopeWriter(65_536);
      const { recv, view } = env.source(1 << 16);
      const dv = new DataView(recv.buffer, recv.byteOffset, recv.length);
      const batch = new RowBatcher(
        env,
        { changesOnly: false, socketOwners: false },
        new NetlinkCounts(new Counters()),
        () => assert.fail("no flush: the thresholds are out of reach"),
      );
      batch.beginPoll(1e9, 1e9, 1);
      batch.stamp = stamp;
      const stats = new ParseStats();
      let grew = 0;
      for (const dump of captureDumps()) {
        for (const dg of dump) {
          if (dg.length > recv.length) continue;
          recv.set(dg);
          const first = new DataView(dg.buffer);
          const opts = {
            mask: -1,
            expectSeq: first.getUint32(8, true),
            expectPid: first.getUint32(12, true),
          };
          const before = env.out.u8.length;
          parseDatagram(
            view,
            recv,
            dv,
            0,
            dg.length,
            opts,
            stats,
            (v) => batch.onSocket(v),
            fast ? batch.onSockets.bind(batch) : undefined,
          );
          if (env.out.u8.length > before) grew++;
        }
      }
      return { bytes: env.envelope().slice(), rows: env.rows, stats: { ...stats }, grew };
    };
    const slow = envelopes(false);
    const fast = envelopes(true);
    assert.ok(fast.grew >= 5, `the buffer grew ${fast.grew} times`);
    assert.ok(fast.rows > 4000, `${fast.rows} rows`);
    assert.equal(fast.rows, slow.rows);
    assert.deepEqual(fast.stats, slow.stats);
    assert.deepEqual(fast.bytes, slow.bytes);
  },
});
