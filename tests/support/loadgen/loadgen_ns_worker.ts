/**
 * One load-generator process for many namespaces at once: for each namespace named in `--ns`, it
 * enters it (setns on this thread, through libc), opens an IPv4 and an IPv6 loopback listener
 * and `--conns` connections to them (half over ::1), sends `--bytes` each way, and comes back.
 * The sockets stay in their namespaces. Prints `ready <connections> <listeners>` and holds every
 * socket until stdin closes. Driven by loadgen.ts (startManyNamespaces).
 */
import { parseArgs } from "node:util";
import {
  sysAccept,
  sysBind,
  sysClose,
  sysConnect,
  sysGetsockname,
  sysListen,
  sysSocket,
  sysWrite,
} from "../../../ffi/libc.ts";
import { openNetnsFd, withNetns } from "../../../ffi/netns.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0x80000;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    ns: { type: "string" },
    conns: { type: "string", default: "40" },
    bytes: { type: "string", default: "100" },
  },
});
const names = (values.ns ?? "").split(",").filter((n) => n);
const conns = Number(values.conns);
const payload = new Uint8Array(Number(values.bytes)).fill(0x78);

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
  sysBind(fd, loopback(family));
  sysListen(fd, 4096);
  const addr = new Uint8Array(family === AF_INET ? 16 : 28);
  sysGetsockname(fd, addr);
  return { fd, addr };
}

const held: number[] = [];
let listeners = 0;
for (const name of names) {
  const nsFd = openNetnsFd(`/run/netns/${name}`);
  try {
    withNetns(nsFd, () => {
      const ls = [listener(AF_INET), listener(AF_INET6)];
      listeners += 2;
      held.push(ls[0].fd, ls[1].fd);
      for (let i = 0; i < conns; i++) {
        const l = ls[i % 2];
        const c = sysSocket(l.addr[0], SOCK_STREAM | SOCK_CLOEXEC, 0);
        sysConnect(c, l.addr); // loopback: completes at once into the listener's backlog
        const s = sysAccept(l.fd);
        if (payload.length) {
          sysWrite(c, payload);
          sysWrite(s, payload);
        }
        held.push(c, s);
      }
    }, name);
  } finally {
    sysClose(nsFd);
  }
}
console.log(`ready ${names.length * conns} ${listeners}`);
const sink = new Uint8Array(64);
while ((await Deno.stdin.read(sink)) !== null) { /* hold until stdin closes */ }
// Exiting closes every socket.
