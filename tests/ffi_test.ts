/**
 * The FFI layer against the real kernel: typed errors with errno names, a netlink socket that
 * dumps, receive timeouts, and sockets created inside another namespace.
 */
import assert from "node:assert/strict";
import { OsError } from "../ffi/errors.ts";
import { netnsInode, sysClose, sysReadlink, sysSetns, sysSocket } from "../ffi/libc.ts";
import { NetlinkSocket } from "../ffi/netlink_socket.ts";
import { openNetlinkSocketIn } from "../ffi/netns.ts";
import { writeDumpRequest } from "../src/netlink/request.ts";

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
