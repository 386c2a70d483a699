/**
 * io_uring (ffi/uring.ts over the raw system calls) against the real kernel: a dump received
 * through the ring holds exactly the sockets of the plain recvmsg path, receives time out like
 * SO_RCVTIMEO, requests left in flight are cancelled, and the daemon with --ioUring writes the
 * same records as without.
 */
import assert from "node:assert/strict";
import { OsError } from "../ffi/errors.ts";
import { openNetlinkSocketIn } from "../ffi/netns.ts";
import { IoUring, UringClosedError } from "../ffi/uring.ts";
import { UringBrokenError, UringNetlinkReader } from "../ffi/uring_netlink.ts";
import type { NetlinkSocket } from "../ffi/netlink_socket.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { idiagExt } from "../src/netlink/deserializers.ts";
import { Dumper, type DumpSink, type NetlinkTransport } from "../src/netlink/dump.ts";
import type { SocketView } from "../src/netlink/socket_view.ts";
import { xtcp2 } from "./support/run.ts";
import { interruptWhenBlocked, SYSCALL, withSigusr1 } from "./support/signal.ts";
import { fdCount, uringMappings } from "./support/leaks.ts";
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

/** Asserts that `fn` throws UringClosedError naming `op`. */
function throwsClosed(fn: () => unknown, op: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UringClosedError, `${op}: ${e}`);
    assert.equal(e.op, op);
    assert.equal(e.message, `The io_uring ring is closed: ${op} after close()`);
    return true;
  });
}

Deno.test({
  name:
    "a closed ring throws UringClosedError from every method instead of reading unmapped memory",
  ignore: !available,
  fn() {
    const ring = IoUring.setup(4);
    const sqe = ring.getSqe();
    assert.ok(sqe >= 0);
    ring.close();
    ring.close(); // idempotent
    assert.equal(ring.closed, true);
    throwsClosed(() => ring.fd, "fd");
    throwsClosed(() => ring.getSqe(), "getSqe");
    throwsClosed(() => ring.prepRecvmsg(sqe, 0, 0n), "prepRecvmsg");
    throwsClosed(() => ring.prepCancelFd(sqe, 0), "prepCancelFd");
    throwsClosed(() => ring.setUserData(sqe, 1), "setUserData");
    throwsClosed(() => ring.submit(), "submit");
    throwsClosed(() => ring.ready(), "ready");
    throwsClosed(() => ring.waitCqe(10), "waitCqe");
    throwsClosed(() => ring.cqeSeen(), "cqeSeen");
  },
});

Deno.test({
  name: "a closed reader and its transports throw UringClosedError",
  ignore: !available,
  fn() {
    using sock = openNetlinkSocketIn("/proc/self/ns/net", { rcvTimeoutMs: 0 });
    const reader = new UringNetlinkReader(4, 32 * 1024, 200);
    const t = reader.transport(sock);
    assert.throws(() => t.recv(new Uint8Array(new ArrayBuffer(32 * 1024))), /ETIME/);
    reader.close(); // cancels the receives left in flight
    reader.close(); // idempotent
    assert.equal(reader.closed, true);
    assert.equal(reader.stats.cancelled, 4);
    throwsClosed(() => t.send(new Uint8Array(16)), "send");
    throwsClosed(() => t.recv(new Uint8Array(new ArrayBuffer(32 * 1024))), "recv");
    throwsClosed(() => t.idle(), "idle");
    throwsClosed(() => reader.idle(), "idle");
    throwsClosed(() => reader.transport(sock), "transport");
  },
});

Deno.test({
  name:
    "a reader whose buffers cannot be allocated closes the ring it set up (no fd or mapping left)",
  ignore: !available,
  fn() {
    const fds = fdCount();
    const maps = uringMappings();
    for (const size of [-1, 2 ** 53]) {
      assert.throws(() => new UringNetlinkReader(8, size, 1000), RangeError);
    }
    assert.throws(() => new UringNetlinkReader(0, 32 * 1024, 1000), /Receive batch must be/);
    assert.throws(() => new UringNetlinkReader(4, 32 * 1024, NaN), /Receive timeout must be/);
    assert.equal(fdCount(), fds, "file descriptors");
    assert.equal(uringMappings(), maps, "io_uring mappings");
  },
});

Deno.test({
  name: "a ring whose mmap fails (RLIMIT_AS) releases its fd and the mappings made before",
  ignore: !available,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-all",
        new URL("./support/uring_enomem_probe.ts", import.meta.url).pathname,
        // 4096 entries: the rings (144 KiB) fit in the headroom, the SQEs (256 KiB) do not.
        String(200_000),
        "4096",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.match(r.error, /^OsError: mmap failed: ENOMEM/);
    assert.equal(r.fds, 0, "file descriptors left");
    assert.equal(r.maps, 0, "io_uring mappings left");
  },
});

/**
 * The reader's transport for `sock`, closing the socket under the ring at a chosen moment:
 * before the receive number `closeAtRecv` (the dump then fails: the socket is closed), or at the
 * start of idle() (the dump went well). Either way the cancel by fd that idle() submits finds no
 * such fd (EBADF), while the receives in flight still hold the socket.
 */
function closingUnderTheRing(
  reader: UringNetlinkReader,
  sock: NetlinkSocket,
  at: { closeAtRecv: number } | "idle",
): NetlinkTransport {
  const inner = reader.transport(sock);
  let receives = 0;
  return {
    portId: inner.portId,
    send: (msg) => inner.send(msg),
    recv: (buf) => {
      if (at !== "idle" && ++receives === at.closeAtRecv) sock.close();
      return inner.recv(buf);
    },
    get lastTruncated() {
      return inner.lastTruncated;
    },
    idle: () => {
      if (at === "idle") sock.close();
      inner.idle();
    },
  };
}

/** Asserts `err` is the OsError of a cancel that found no such fd. */
function isCancelEbadf(err: unknown): boolean {
  return err instanceof OsError && err.op === "io_uring cancel" && err.code === "EBADF";
}

/**
 * Asserts the reader refuses any further use (a new transport, idle, a dump through the
 * transport `t` made before) with UringBrokenError caused by the failed cancel, then closes.
 */
function assertBroken(reader: UringNetlinkReader, t: NetlinkTransport, nsPath: string): void {
  using fresh = openNetlinkSocketIn(nsPath, { rcvTimeoutMs: 5000 });
  const dumper = new Dumper({ mask: 0xffff, ext: idiagExt(0xffff) });
  const uses = [
    () => reader.transport(fresh),
    () => reader.idle(),
    () => dumper.dump(t, new Collect()),
  ];
  for (const use of uses) {
    assert.throws(use, (e: unknown) => {
      assert.ok(e instanceof UringBrokenError, `${e}`);
      assert.ok(isCancelEbadf(e.cause), `cause: ${e.cause}`);
      assert.match(e.message, /^The io_uring reader is broken since its cancel failed: \w+: /);
      return true;
    });
  }
  reader.close(); // no cancel on a broken reader: closing the ring ends what is in flight
  assert.equal(reader.closed, true);
}

Deno.test({
  name:
    "a dump that fails keeps its own error; the failed cancel after it rides along as suppressed",
  ignore: !available,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 3000, bytes: 10 });
    const sock = openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 5000 });
    const reader = new UringNetlinkReader(8, 32 * 1024, 5000);
    const dumper = new Dumper({ mask: 0xffff, ext: idiagExt(0xffff) });
    const t = closingUnderTheRing(reader, sock, { closeAtRecv: 3 });
    assert.throws(() => dumper.dump(t, new Collect()), (e: unknown) => {
      // The dump's own error: the third receive found its socket closed.
      assert.ok(e instanceof Error && !(e instanceof OsError), `${e}`);
      assert.equal(e.message, "Netlink socket is closed");
      const { suppressed } = e as { suppressed?: unknown[] };
      assert.equal(suppressed?.length, 1, "the cleanup failure is kept");
      assert.ok(isCancelEbadf(suppressed[0]), `suppressed: ${suppressed[0]}`);
      return true;
    });
    assertBroken(reader, t, load.nsPath);
  },
});

Deno.test({
  name:
    "a dump that went well but whose cancel failed throws the cancel's error; the reader is broken",
  ignore: !available,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 3000, bytes: 10 });
    const sock = openNetlinkSocketIn(load.nsPath, { rcvTimeoutMs: 5000 });
    const reader = new UringNetlinkReader(8, 32 * 1024, 5000);
    const dumper = new Dumper({ mask: 0xffff, ext: idiagExt(0xffff) });
    const rows = new Collect();
    const t = closingUnderTheRing(reader, sock, "idle");
    assert.throws(() => dumper.dump(t, rows), (e) => {
      assert.ok(isCancelEbadf(e), `${e}`);
      assert.equal((e as { suppressed?: unknown[] }).suppressed, undefined);
      return true;
    });
    assert.equal(rows.rows.length, 6000 + load.listeners, "the dump itself was complete");
    assertBroken(reader, t, load.nsPath);
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
        r.stderr.match(/io_uring unavailable: using recvmsg: io_uring_setup failed: EPERM/g)
          ?.length,
        1,
      );
      assert.match(new TextDecoder().decode(r.stdout), /"inet_diag_msg_family"/);
    } finally {
      Deno.writeTextFileSync(DISABLED, before);
    }
  },
});
