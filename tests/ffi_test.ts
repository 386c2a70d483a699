/**
 * The FFI layer against the real kernel: typed errors with errno names, a netlink socket that
 * dumps, receive timeouts, and sockets created inside another namespace.
 */
import assert from "node:assert/strict";
import { errnoName, OsError } from "../ffi/errors.ts";
import {
  AF_UNIX,
  EAGAIN,
  ECANCELED,
  EINTR,
  ENOENT,
  EOPNOTSUPP,
  errno,
  ETIME,
  libc,
  MAX_EINTR_RETRIES,
  netnsInode,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  sysBind,
  sysClose,
  sysReadlink,
  sysSetns,
  sysSocket,
} from "../ffi/libc.ts";
import { NetlinkSocket } from "../ffi/netlink_socket.ts";
import { openNetlinkSocketIn } from "../ffi/netns.ts";
import { writeDumpRequest } from "../src/netlink/request.ts";
import { interruptWhenBlocked, SYSCALL, withSigusr1 } from "./support/signal.ts";
import { fdCount } from "./support/leaks.ts";
import { sockaddrUn, UnixDgramSocket } from "../ffi/unix_dgram.ts";

function dumpPorts(sock: NetlinkSocket, seq: number): number[] {
  const req = new Uint8Array(72);
  writeDumpRequest(req, 0, { family: 2, ext: 0, seq, states: 0xffffffff });
  sock.send(req);
  const buf = new Uint8Array(new ArrayBuffer(32 * 1024));
  const dv = new DataView(buf.buffer);
  const ports: number[] = [];
  for (;;) {
    const n = sock.recv(buf);
    assert.equal(sock.lastTruncated, false);
    for (let off = 0; off < n;) {
      const len = dv.getUint32(off, true);
      const type = dv.getUint16(off + 4, true);
      assert.equal(dv.getUint32(off + 8, true), seq, "nlmsg_seq of the reply");
      assert.equal(dv.getUint32(off + 12, true), sock.portId, "nlmsg_pid is our port id");
      if (type === 3) return ports;
      if (type === 20) ports.push(dv.getUint16(off + 16 + 4, false));
      off += (len + 3) & ~3;
    }
  }
}

Deno.test("failed libc calls throw OsError naming the call and the errno", () => {
  assert.throws(() => sysSocket(12345, 2, 0), (e: unknown) => {
    assert.ok(e instanceof OsError);
    assert.equal(e.op, "socket");
    assert.equal(e.code, "EAFNOSUPPORT");
    assert.equal(e.errno, 97);
    assert.match(
      e.message,
      /^socket failed: EAFNOSUPPORT \(errno 97\): address family not supported/,
    );
    return true;
  });
  assert.throws(() => sysClose(-1), (e: unknown) => e instanceof OsError && e.code === "EBADF");
  assert.throws(
    () => sysSetns(987654, 0x40000000, "ns x"),
    (e: unknown) => e instanceof OsError && e.code === "EBADF" && e.message.endsWith(": ns x"),
  );
  assert.throws(
    () => sysReadlink("/nonexistent/link"),
    (e: unknown) => e instanceof OsError && e.code === "ENOENT" && /nonexistent/.test(e.message),
  );
});

const ERRNO_PROBE = new URL("./support/errno_probe.ts", import.meta.url).pathname;

/** Garbage collections of a subprocess reading errno `reads` times, and what it read. */
async function errnoReads(reads: number): Promise<{ gcs: number; last: string; right: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-ffi", "--v8-flags=--trace-gc", ERRNO_PROBE, String(reads)],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  const text = new TextDecoder().decode(out.stdout);
  const m = /errno (\w+) (\d+)/.exec(text);
  assert.ok(m, text);
  return {
    gcs: (text.match(/Scavenge|Mark-Compact|Mark-sweep/g) ?? []).length,
    last: m[1],
    right: Number(m[2]),
  };
}

Deno.test("reading errno allocates nothing: a million reads, no extra GC, each one EBADF", async () => {
  const idle = await errnoReads(0);
  const busy = await errnoReads(1_000_000);
  assert.equal(busy.last, "EBADF");
  assert.equal(busy.right, 1_000_000, "every read right after close(-1) saw EBADF");
  assert.ok(
    // One small object per read (a pointer view) adds ~60 collections per million reads.
    busy.gcs <= idle.gcs + 4,
    `${busy.gcs} collections for a million errno reads vs ${idle.gcs} for none`,
  );
});

Deno.test("errno is the calling thread's own: a Worker reads its errnos, the main thread its own", async () => {
  const worker = new Worker(new URL("./support/errno_worker.ts", import.meta.url), {
    type: "module",
  });
  const got = await new Promise<{ rounds: number; badf: number; noent: number }>(
    (resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(e.error ?? new Error(e.message));
    },
  );
  worker.terminate();
  assert.deepEqual(got, { rounds: 10_000, badf: 10_000, noent: 10_000 });
  libc().close(-1);
  assert.equal(errno(), 9, "EBADF on the main thread");
});

Deno.test("the errno constants of ffi/libc.ts are the kernel's: named as such, and returned by it", () => {
  // The errno table names 95 by its glibc alias ENOTSUP (the kernel's EOPNOTSUPP).
  const named = { ENOENT, EINTR, EAGAIN, ETIME, ENOTSUP: EOPNOTSUPP, ECANCELED };
  for (const [name, value] of Object.entries(named)) assert.equal(errnoName(value), name);
  assert.throws(
    () => sysReadlink("/nonexistent/link"),
    (e: unknown) => e instanceof OsError && e.errno === ENOENT,
  );
  using sock = NetlinkSocket.open({ rcvTimeoutMs: 10 });
  assert.throws(
    () => sock.recv(new Uint8Array(new ArrayBuffer(32 * 1024))),
    (e: unknown) => e instanceof OsError && e.errno === EAGAIN,
  );
  assert.throws(
    () => sock.send(new Uint8Array(5000)),
    (e: unknown) =>
      e instanceof RangeError &&
      e.message === "Netlink request too large (max 4096 bytes): 5000 bytes",
  );
});

Deno.test("a netlink socket dumps this namespace: our listener is in it", () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    using sock = NetlinkSocket.open({ rcvTimeoutMs: 1000 });
    assert.ok(sock.portId > 0);
    assert.ok(sock.fd > 2);
    const ports = dumpPorts(sock, 41);
    assert.ok(ports.includes((listener.addr as Deno.NetAddr).port), "listener port in the dump");
    assert.deepEqual(dumpPorts(sock, 42).sort(), ports.sort(), "the socket is reusable");
  } finally {
    listener.close();
  }
});

Deno.test("a receive with nothing to read times out with EAGAIN", () => {
  using sock = NetlinkSocket.open({ rcvTimeoutMs: 100 });
  const buf = new Uint8Array(new ArrayBuffer(32 * 1024));
  const t0 = performance.now();
  assert.throws(() => sock.recv(buf), (e: unknown) => e instanceof OsError && e.code === "EAGAIN");
  const ms = performance.now() - t0;
  assert.ok(ms >= 80 && ms < 1000, `timed out after ${ms} ms`);
  sock.close();
  sock.close(); // idempotent
  assert.throws(() => sock.recv(buf), /closed/);
});

/** Receives on a fresh netlink socket (nothing to read) while signals come; the outcome. */
function interruptedRecv(rcvTimeoutMs: number, signals: number) {
  return withSigusr1(async () => {
    using sock = NetlinkSocket.open({ rcvTimeoutMs });
    const sender = interruptWhenBlocked(SYSCALL.recvmsg, signals);
    const t0 = performance.now();
    let err: unknown;
    try {
      sock.recv(new Uint8Array(new ArrayBuffer(32 * 1024)));
    } catch (e) {
      err = e;
    }
    return { err, ms: performance.now() - t0, sent: await sender.sent };
  });
}

Deno.test("a receive interrupted by a signal goes on waiting: EAGAIN at SO_RCVTIMEO, not EINTR", async () => {
  const { value: { err, ms, sent }, seen } = await interruptedRecv(1500, 1);
  assert.equal(sent, 1, "one SIGUSR1 while the receive was blocked");
  assert.ok(seen >= 1, "Deno's listener saw the signal");
  assert.ok(err instanceof OsError && err.code === "EAGAIN", `${err}`);
  assert.ok(ms >= 1500, `gave up after ${ms} ms`);
});

Deno.test("a storm of signals still ends a receive: EINTR after MAX_EINTR_RETRIES retries", async () => {
  const { value: { err, sent } } = await interruptedRecv(5000, MAX_EINTR_RETRIES + 30);
  assert.ok(err instanceof OsError && err.code === "EINTR", `${err}`);
  assert.match(err.message, new RegExp(`interrupted ${MAX_EINTR_RETRIES + 1} times in a row`));
  assert.ok(sent > MAX_EINTR_RETRIES, `${sent} signals, each an interruption`);
});

Deno.test("constructors that throw leave no file descriptor behind", () => {
  const fds = fdCount();
  const long = `/tmp/${"x".repeat(200)}`;
  for (let i = 0; i < 5; i++) {
    assert.throws(() => UnixDgramSocket.connect(long), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /^Unix socket path too long \(max 107 bytes\): 205 bytes: \/tmp\/x/);
      return true;
    });
    assert.throws(() => NetlinkSocket.open({ rcvTimeoutMs: NaN }), /Receive timeout must be/);
    assert.throws(() => NetlinkSocket.open({ rcvBufBytes: -1 }), /Receive buffer must be/);
    assert.throws(() => NetlinkSocket.open({ protocol: 9999 }), OsError); // socket(2) itself fails
  }
  assert.equal(fdCount(), fds, "open file descriptors");
});

const UNIXGRAM_PROBE = new URL("./support/unixgram_probe.ts", import.meta.url).pathname;

Deno.test("unixgram never blocks: 5,000 sends to a receiver that never reads return at once, drops reported", async () => {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-all", UNIXGRAM_PROBE, "5000", "1000"],
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout(20_000),
    }).output();
  } catch (err) {
    throw new Error("Unixgram sends blocked: the probe was killed after 20 s", { cause: err });
  }
  assert.ok(out.success, `probe exited with ${out.code} (signal ${out.signal})`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(r.sent + r.dropped, 5000);
  assert.ok(r.sent >= 1, `${r.sent} sent before the queue filled`);
  assert.ok(r.dropped >= 4000, `${r.dropped} dropped (the queue holds net.unix.max_dgram_qlen)`);
  assert.ok(r.ms < 5000, `${r.ms} ms for 5,000 sends`);
});

Deno.test("unixgram: a full queue means false until the receiver reads; other failures throw", () => {
  const dir = Deno.makeTempDirSync();
  const receiver = sysSocket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  let receiverOpen = true;
  try {
    const path = `${dir}/r.sock`;
    sysBind(receiver, sockaddrUn(path));
    using sock = UnixDgramSocket.connect(path);
    const payload = new Uint8Array(100).fill(1);
    let sent = 0;
    while (sock.send(payload)) assert.ok(++sent < 100_000, "the queue never filled");
    assert.equal(sock.send(payload), false, "still full");
    const buf = new Uint8Array(new ArrayBuffer(200));
    assert.equal(Number(libc().read(receiver, buf, 200n)), 100, "the receiver takes one");
    assert.equal(sock.send(payload), true, "room for one again");
    assert.equal(sock.send(payload), false);
    assert.throws(() => sock.send(new Uint8Array(70_000)), /^RangeError: Unix datagram too large/);
    sysClose(receiver);
    receiverOpen = false;
    assert.throws(
      () => sock.send(payload),
      (e: unknown) => e instanceof OsError && e.code === "ECONNREFUSED" && e.message.endsWith(path),
    );
    Deno.removeSync(path);
    assert.throws(
      () => sock.send(payload),
      (e: unknown) => e instanceof OsError && e.code === "ENOENT" && e.op === "sendto",
    );
    sock.close();
    assert.throws(() => sock.send(payload), /Unix datagram socket is closed/);
  } finally {
    if (receiverOpen) sysClose(receiver);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "a socket opened inside another namespace dumps that namespace; the thread comes back",
  sanitizeResources: false,
  async fn() {
    const name = `xtcp2-ffi-${crypto.randomUUID().slice(0, 8)}`;
    const ip = (...args: string[]) => new Deno.Command("ip", { args, stderr: "piped" }).output();
    assert.ok((await ip("netns", "add", name)).success);
    let child: Deno.ChildProcess | undefined;
    const host = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      assert.ok((await ip("-n", name, "link", "set", "lo", "up")).success);
      child = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          name,
          "/usr/bin/python3",
          "-c",
          "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', 7777)); s.listen(); print('ok', flush=True); sys.stdin.read()",
        ],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      assert.equal((await reader.read()).value?.trim(), "ok");
      reader.releaseLock();
      const before = netnsInode("/proc/thread-self/ns/net");
      using sock = openNetlinkSocketIn(`/run/netns/${name}`);
      assert.equal(netnsInode("/proc/thread-self/ns/net"), before, "thread back in its namespace");
      const ports = dumpPorts(sock, 7);
      assert.deepEqual(ports, [7777]);
      assert.ok(!ports.includes((host.addr as Deno.NetAddr).port));
      assert.throws(
        () => openNetlinkSocketIn(`/run/netns/${name}-missing`),
        (e: unknown) =>
          e instanceof OsError && e.code === "ENOENT" && e.message.includes(`${name}-missing`),
      );
      assert.equal(netnsInode("/proc/thread-self/ns/net"), before);
    } finally {
      host.close();
      if (child) {
        await child.stdin.close();
        await child.stdout.cancel().catch(() => {});
        await child.status;
      }
      await ip("netns", "del", name);
    }
  },
});
