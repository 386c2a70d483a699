/**
 * io_uring (ffi/uring.ts over the raw system calls) against the real kernel: a dump received
 * through the ring holds exactly the sockets of the plain recvmsg path, receives time out like
 * SO_RCVTIMEO, requests left in flight are cancelled, and the daemon with --ioUring writes the
 * same records as without.
 */
import assert from "node:assert/strict";
import { OsError } from "../ffi/errors.ts";
import { openNetlinkSocketIn } from "../ffi/netns.ts";
import { IoUring } from "../ffi/uring.ts";
import { UringNetlinkReader } from "../ffi/uring_netlink.ts";
import { startLoad } from "../bench/loadgen.ts";
import { idiagExt } from "../src/netlink/deserializers.ts";
import { Dumper, type DumpSink } from "../src/netlink/dump.ts";
import type { SocketView } from "../src/netlink/socket_view.ts";
import { xtcp2 } from "./support/run.ts";
import { interruptWhenBlocked, SYSCALL, withSigusr1 } from "./support/signal.ts";
import { MAX_EINTR_RETRIES } from "../ffi/libc.ts";

/** Sockets of a dump as "family state sport>dport inode", sorted. */
class Collect implements DumpSink {
  readonly rows: string[] = [];
  onSocket(v: SocketView): void {
    this.rows.push(`${v.family} ${v.state} ${v.sport}>${v.dport} ${v.inode}`);
  }
  checkpoint(): void {}
  rollback(): void {}
}

const available = (() => {
  try {
    IoUring.setup(2).close();
    return true;
  } catch (err) {
    console.error(`SKIP io_uring tests: ${(err as Error).message}`);
    return false;
  }
})();

Deno.test({
  name: "a dump through io_uring equals the plain recvmsg dump; leftover receives are cancelled",
  ignore: !available,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 3000, bytes: 10 });
    using sock = openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 5000 });
    const mask = 0xffff;
    const dumper = new Dumper({ mask, ext: idiagExt(mask) });
    for (const [batch, cqeBatch] of [[1, 128], [8, 1], [64, 128]]) {
      using reader = new UringNetlinkReader(batch, 32 * 1024, 5000, cqeBatch);
      const t = reader.transport(sock);
      const viaRing = new Collect();
      const plain = new Collect();
      const n = dumper.dump(t, viaRing);
      dumper.dump(sock, plain);
      assert.equal(n, 6000 + load.listeners, `batch ${batch}`);
      assert.deepEqual(viaRing.rows.sort(), plain.rows.sort(), `batch ${batch}`);
      // A second dump on the same ring works as well (nothing stale left in flight).
      const again = new Collect();
      assert.equal(dumper.dump(t, again), n);
      assert.equal(reader.stats.orphans, 0);
      if (batch > 1) {
        assert.ok(reader.stats.cancelled > 0, "receives left after DONE were cancelled");
        assert.ok(reader.enters < reader.stats.packets, "several datagrams per io_uring_enter");
      }
    }
  },
});

Deno.test({
  name: "a receive through io_uring times out (ETIME) when the kernel sends nothing",
  ignore: !available,
  fn() {
    using sock = openNetlinkSocketIn("/proc/self/ns/net", { rcvTimeoutMs: 0 });
    using reader = new UringNetlinkReader(4, 32 * 1024, 200);
    const t = reader.transport(sock);
    const t0 = performance.now();
    assert.throws(
      () => t.recv(new Uint8Array(new ArrayBuffer(32 * 1024))),
      (e: unknown) => e instanceof OsError && e.code === "ETIME",
    );
    const ms = performance.now() - t0;
    assert.ok(ms >= 150 && ms < 2000, `${ms} ms`);
    t.idle();
    assert.equal(reader.stats.cancelled, 4);
  },
});

/** Receives through the ring (nothing to read) while signals come; the outcome. */
function interruptedRingRecv(timeoutMs: number, signals: number) {
  return withSigusr1(async () => {
    using sock = openNetlinkSocketIn("/proc/self/ns/net", { rcvTimeoutMs: 0 });
    using reader = new UringNetlinkReader(4, 32 * 1024, timeoutMs);
    const t = reader.transport(sock);
    const sender = interruptWhenBlocked(SYSCALL.ioUringEnter, signals);
    const t0 = performance.now();
    let err: unknown;
    try {
      t.recv(new Uint8Array(new ArrayBuffer(32 * 1024)));
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    t.idle();
    return { err, ms, sent: await sender.sent };
  });
}

Deno.test({
  name: "an io_uring wait interrupted by a signal goes on until its deadline (ETIME, not EINTR)",
  ignore: !available,
  async fn() {
    const { value: { err, ms, sent }, seen } = await interruptedRingRecv(1500, 1);
    assert.equal(sent, 1, "one SIGUSR1 while io_uring_enter waited");
    assert.ok(seen >= 1, "Deno's listener saw the signal");
    assert.ok(err instanceof OsError && err.code === "ETIME", `${err}`);
    assert.ok(ms >= 1450 && ms < 4000, `gave up after ${ms} ms`);
  },
});

Deno.test({
  name: "a storm of signals still ends an io_uring wait: EINTR after MAX_EINTR_RETRIES retries",
  ignore: !available,
  async fn() {
    const { value: { err, sent } } = await interruptedRingRecv(5000, MAX_EINTR_RETRIES + 30);
    assert.ok(err instanceof OsError && err.code === "EINTR", `${err}`);
    assert.match(err.message, new RegExp(`interrupted ${MAX_EINTR_RETRIES + 1} times in a row`));
    assert.ok(sent > MAX_EINTR_RETRIES, `${sent} signals, each an interruption`);
  },
});

Deno.test({
  name: "xtcp2 --ioUring writes the same sockets as the plain path",
  ignore: !available,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 500, bytes: 10 });
    const ports = async (extra: string[]) => {
      const r = await xtcp2(
        ["-maxLoops", "1", "-pollJitterPct", "0", "-dest", "stdout", "-marshal", "jsonl", ...extra],
        { prefix: ["ip", "netns", "exec", load.netns] },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /io_uring unavailable/);
      return new TextDecoder().decode(r.stdout).trim().split("\n").map((l) => JSON.parse(l))
        .filter((o) => o.netns === "default")
        .map((o) =>
          `${o.inet_diag_msg_socket_source_port}>${o.inet_diag_msg_socket_destination_port ?? 0}`
        )
        .sort();
    };
    const plain = await ports([]);
    const ring = await ports(["-ioUring", "-ioUringRecvBatch", "16"]);
    assert.equal(plain.length, 1000 + load.listeners + 2); // + the daemon's API listeners
    assert.deepEqual(ring, plain);
  },
});

const DISABLED = "/proc/sys/kernel/io_uring_disabled";

Deno.test({
  name: "where the kernel refuses io_uring, xtcp2 --ioUring warns once and polls with recvmsg",
  ignore: (() => {
    try {
      Deno.statSync(DISABLED);
      return false;
    } catch {
      console.error(`SKIP io_uring fallback test: ${DISABLED} absent (kernel before 6.6)`);
      return true;
    }
  })(),
  async fn() {
    const before = Deno.readTextFileSync(DISABLED).trim();
    Deno.writeTextFileSync(DISABLED, "2"); // io_uring_setup fails with EPERM for everyone
    try {
      const r = await xtcp2(["-maxLoops", "1", "-dest", "stdout", "-marshal", "jsonl", "-ioUring"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        r.stderr.match(/io_uring unavailable \(io_uring_setup failed: EPERM/g)?.length,
        1,
      );
      assert.match(new TextDecoder().decode(r.stdout), /"inet_diag_msg_family"/);
    } finally {
      Deno.writeTextFileSync(DISABLED, before);
    }
  },
});
