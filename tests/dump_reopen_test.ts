/**
 * A dump that fails midway leaves nothing behind: the poller replaces the namespace's socket
 * (NamespaceRegistry.reopen), so the next poll of that namespace counts its full socket set,
 * against a real namespace holding thousands of loopback connections. Next to it, what the same
 * failure does to a socket that is kept (the old behaviour): the rest of the broken dump is
 * still queued on it, the kernel is still running that dump, and the next dump on it does not
 * return the namespace's sockets.
 *
 * The failure is injected by a test-only wrapper around the real socket: after two datagrams of
 * one dump, its receive throws a DecodeError instead of reading the next one (as broken framing
 * would), leaving the rest of the dump unread.
 */
import assert from "node:assert/strict";
import type { NetlinkSocket } from "../ffi/netlink_socket.ts";
import { defaultHome } from "../ffi/netns.ts";
import { decoderMask, pollSettings } from "../src/config/derive.ts";
import { defaultConfig } from "../src/config/load.ts";
import { NullDest } from "../src/dest/null.ts";
import { InPlaceDelivery } from "../src/dest/queue.ts";
import { marshaller } from "../src/format/marshal.ts";
import { idiagExt } from "../src/netlink/deserializers.ts";
import { Dumper, type DumpSink } from "../src/netlink/dump.ts";
import { DecodeError, NetlinkError } from "../src/netlink/errors.ts";
import { NamespaceRegistry } from "../src/netns/registry.ts";
import { Poller } from "../src/poll/poller.ts";
import { msToDuration } from "../src/util/duration.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { type Load, startLoad } from "./support/loadgen/loadgen.ts";

const CONNS = 3000;

/** The real socket, except that one armed dump breaks after `after` datagrams. */
class BreakingReceives {
  /** Set to break the next dump; cleared when it broke. */
  armed = false;
  /** Datagrams received while armed. */
  received = 0;
  /** Dumps broken. */
  broken = 0;

  constructor(private readonly after: number) {}

  /** `real`, with its receives going through the breaker (everything else untouched). */
  wrap(real: NetlinkSocket): NetlinkSocket {
    return new Proxy(real, {
      get: (target, prop) => {
        if (prop === "recv") {
          return (buf: Uint8Array): number => {
            if (this.armed && this.received >= this.after) {
              this.armed = false;
              this.broken++;
              throw new DecodeError("Injected broken framing", 0, "the test's breaker");
            }
            const n = target.recv(buf);
            if (this.armed) this.received++;
            return n;
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  }
}

/** A namespace's sockets as a fresh socket dumps them (the reference count). */
function freshCount(load: Load): number {
  using sock = defaultHome().openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 5000 });
  return count(new Dumper({ mask: 0, ext: 0 }), sock);
}

function count(dumper: Dumper, t: NetlinkSocket): number {
  let n = 0;
  const sink: DumpSink = { onSocket: () => n++, checkpoint() {}, rollback() {} };
  const returned = dumper.dump(t, sink);
  assert.equal(returned, n, "the dump's count is the sockets delivered");
  return n;
}

Deno.test({
  name:
    "a dump that breaks midway gets its namespace a new socket: the next poll counts every socket (real Poller, 3,000 connections)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: CONNS, bytes: 10 });
    const expected = 2 * CONNS + load.listeners;
    assert.equal(freshCount(load), expected, "the load is what it says");
    const counters = new Counters();
    const lines: string[] = [];
    const log = new Logger(1, (l) => lines.push(l));
    using registry = new NamespaceRegistry({
      home: defaultHome(),
      selfInode: 0n,
      rcvTimeoutMs: 5000,
      log,
      counters,
    });
    const breaker = new BreakingReceives(2);
    const inode = BigInt(Deno.statSync(load.nsPath).ino ?? 0);
    const wrapped = breaker.wrap(
      defaultHome().openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 5000 }),
    );
    const st = { info: { inode, name: load.netns, path: load.nsPath }, socket: wrapped };
    registry.states.set(inode, st);
    const cfg = defaultConfig();
    cfg.dest = "null";
    cfg.pollFrequency = msToDuration(60_000);
    cfg.pollTimeout = msToDuration(30_000);
    using poller = new Poller({
      settings: pollSettings(cfg, { hostname: "test-host", version: "test" }),
      registry,
      delivery: new InPlaceDelivery(new NullDest(), "message", counters, log),
      marshaller: marshaller("protobufList"),
      log,
      counters,
    });
    assert.equal((await poller.pollOnce()).sockets, expected, "a clean poll counts every socket");

    breaker.armed = true;
    await poller.pollOnce();
    assert.equal(breaker.broken, 1, "the dump broke");
    assert.equal(counters.get("Poller", "dumpError", "DecodeError"), 1);
    assert.ok(
      lines.some((l) => l.includes(`Dump of namespace ${load.netns} failed: Injected broken`)),
      lines.join("\n"),
    );
    for (let i = 0; i < 3; i++) {
      const s = await poller.pollOnce();
      assert.equal(s.sockets, expected, `poll ${i + 1} after the break counts every socket`);
    }

    assert.equal(counters.get("netNamespaceInstance", "reopen"), 1, "the socket was replaced");
    assert.notEqual(st.socket, wrapped, "a new socket for the namespace");
    assert.throws(() => wrapped.fd, /closed/, "the broken dump's socket is closed");
    assert.equal(counters.get("Poller", "dump", "error"), 1, "no other dump failed");
    assert.equal(counters.get("Poller", "dumpError", "EBUSY"), 0);
  },
});

Deno.test({
  name:
    "the same break on a socket that is kept (no reopen): the next dump on it does not get the namespace's sockets",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: CONNS, bytes: 10 });
    const expected = 2 * CONNS + load.listeners;
    const breaker = new BreakingReceives(2);
    using real = defaultHome().openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 2000 });
    const sock = breaker.wrap(real);
    const cfg = defaultConfig();
    const mask = decoderMask(cfg);
    const dumper = new Dumper({ mask, ext: idiagExt(mask), bufferSize: 32 * 1024 });
    assert.equal(count(dumper, sock), expected);
    breaker.armed = true;
    assert.throws(() => count(dumper, sock), DecodeError);
    const staleBefore = dumper.stats.seqMismatch;
    // The kernel is still running the broken dump on this socket: a new request is refused,
    // after the rest of the old dump (other seq) was read and skipped.
    assert.throws(
      () => count(dumper, sock),
      (e: unknown) => e instanceof NetlinkError && e.code === "EBUSY",
      "the next dump on the kept socket",
    );
    const stale = dumper.stats.seqMismatch - staleBefore;
    assert.ok(stale > 0, "stale datagrams of the broken dump were still queued");
    // A new socket in the same namespace, meanwhile, gets all of it.
    assert.equal(freshCount(load), expected);
  },
});
