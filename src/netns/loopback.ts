/**
 * Established loopback TCP connections made with plain system calls, so that they are made in
 * the network namespace the calling thread is in (call inside `withNetns`): an IPv4 and an IPv6
 * listener, and connections to them alternating between the two. Used by `nstest --conns` and the
 * tests' load generator.
 *
 * @module
 */
import {
  sysAccept,
  sysBind,
  sysClose,
  sysConnect,
  sysGetsockname,
  sysListen,
  sysRead,
  sysSocket,
  sysWrite,
} from "../../ffi/libc.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0x80000;

/** Sockets of {@link openLoopbackConns}: close them with {@link closeLoopbackConns}. */
export interface LoopbackConns {
  /** The two listeners. */
  listeners: number[];
  /** Each connection's client and accepted ends. */
  pairs: [number, number][];
}

/** Loopback sockaddr of the family, port 0 (any). */
function loopback(family: number): Uint8Array {
  const a = new Uint8Array(family === AF_INET ? 16 : 28);
  a[0] = family;
  if (family === AF_INET) a.set([127, 0, 0, 1], 4);
  else a[8 + 15] = 1; // ::1
  return a;
}

function listener(family: number): { fd: number; addr: Uint8Array } {
  const fd = sysSocket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  try {
    sysBind(fd, loopback(family));
    sysListen(fd, 4096);
    const addr = new Uint8Array(family === AF_INET ? 16 : 28);
    sysGetsockname(fd, addr);
    return { fd, addr };
  } catch (err) {
    sysClose(fd);
    throw err;
  }
}

/**
 * Opens two listeners and `conns` connections (half over ::1), sending `payload` each way once.
 * The loopback interface must be up. On failure, what was opened is closed.
 */
export function openLoopbackConns(conns: number, payload: Uint8Array): LoopbackConns {
  const out: LoopbackConns = { listeners: [], pairs: [] };
  try {
    const ls = [listener(AF_INET), listener(AF_INET6)];
    out.listeners.push(ls[0].fd, ls[1].fd);
    for (let i = 0; i < conns; i++) {
      const l = ls[i % 2];
      const c = sysSocket(l.addr[0], SOCK_STREAM | SOCK_CLOEXEC, 0);
      try {
        sysConnect(c, l.addr); // loopback: completes at once into the listener's backlog
      } catch (err) {
        sysClose(c);
        throw err;
      }
      out.pairs.push([c, sysAccept(l.fd)]);
    }
    if (payload.length) exchange(out, payload, false);
    return out;
  } catch (err) {
    closeLoopbackConns(out);
    throw err;
  }
}

/**
 * Sends `payload` each way on every connection; with `drain`, reads it back on the other end (so
 * the receive queues never fill).
 */
export function exchange(c: LoopbackConns, payload: Uint8Array, drain = true): void {
  const buf = new Uint8Array(payload.length);
  for (const [a, b] of c.pairs) {
    sysWrite(a, payload);
    sysWrite(b, payload);
    if (!drain) continue;
    for (const fd of [a, b]) {
      for (let got = 0; got < payload.length;) {
        const n = sysRead(fd, buf.subarray(got));
        if (n === 0) throw new Error("loopback connection closed by its peer");
        got += n;
      }
    }
  }
}

/** Closes every socket. */
export function closeLoopbackConns(c: LoopbackConns): void {
  for (const [a, b] of c.pairs) {
    sysClose(a);
    sysClose(b);
  }
  for (const fd of c.listeners) sysClose(fd);
  c.pairs.length = 0;
  c.listeners.length = 0;
}
