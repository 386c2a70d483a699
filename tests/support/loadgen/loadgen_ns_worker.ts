/**
 * One load-generator process for many namespaces at once: for each namespace named in `--ns`, it
 * enters it (setns on this thread, through libc), opens an IPv4 and an IPv6 loopback listener
 * and `--conns` connections to them (half over ::1), sends `--bytes` each way, and comes back.
 * The sockets stay in their namespaces. Prints `ready <connections> <listeners>` and holds every
 * socket until stdin closes. Driven by loadgen.ts (startManyNamespaces).
 */
import { parseArgs } from "node:util";
import { sysClose } from "../../../ffi/libc.ts";
import { openNetnsFd, withNetns } from "../../../ffi/netns.ts";
import { type LoopbackConns, openLoopbackConns } from "../../../src/netns/loopback.ts";

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

const held: LoopbackConns[] = [];
for (const name of names) {
  const nsFd = openNetnsFd(`/run/netns/${name}`);
  try {
    held.push(withNetns(nsFd, () => openLoopbackConns(conns, payload), name));
  } finally {
    sysClose(nsFd);
  }
}
const listeners = held.length * 2;
console.log(`ready ${names.length * conns} ${listeners}`);
const sink = new Uint8Array(64);
while ((await Deno.stdin.read(sink)) !== null) { /* hold until stdin closes */ }
// Exiting closes every socket.
