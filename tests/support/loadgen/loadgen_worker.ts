/**
 * One load-generator process: listens on loopback ports, opens `--conns` connections to them
 * (IPv4 to `--hosts4`, default 127.0.0.1, IPv6 to `--hosts6`, default ::1, round robin over the
 * hosts), exchanges `--bytes` each way, prints `ready <conns> <listeners>`, and holds every
 * socket open until its stdin closes or it gets SIGTERM.
 * Run inside a namespace by loadgen.ts (`ip netns exec NS deno run --allow-net …`).
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    conns: { type: "string" },
    v6: { type: "string", default: "0.5" },
    bytes: { type: "string", default: "100" },
    basePort: { type: "string" },
    listeners: { type: "string", default: "2" },
    hosts4: { type: "string", default: "127.0.0.1" },
    hosts6: { type: "string", default: "::1" },
  },
});
const hosts4 = values.hosts4.split(",");
const hosts6 = values.hosts6.split(",");
const conns = Number(values.conns);
const v6Fraction = Number(values.v6);
const bytes = Number(values.bytes);
const basePort = Number(values.basePort);
const perFamily = Math.max(1, Number(values.listeners));

const held: Deno.Conn[] = [];
const listeners: Deno.Listener[] = [];
const payload = new Uint8Array(bytes).fill(0x78);

async function readExactly(c: Deno.Conn, n: number): Promise<void> {
  const buf = new Uint8Array(Math.max(1, n));
  let got = 0;
  while (got < n) {
    const r = await c.read(buf.subarray(0, n - got));
    if (r === null) throw new Error("peer closed early");
    got += r;
  }
}

async function writeAll(c: Deno.Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await c.write(b.subarray(off));
}

function serve(l: Deno.Listener): void {
  (async () => {
    for await (const c of l) {
      held.push(c);
      (async () => {
        await readExactly(c, bytes);
        await writeAll(c, payload);
      })().catch((e) => {
        console.error(`server side: ${e}`);
        Deno.exit(3);
      });
    }
  })().catch(() => {/* listener closed at exit */});
}

const v4Ports: number[] = [];
const v6Ports: number[] = [];
for (let i = 0; i < perFamily; i++) {
  const p4 = basePort + i;
  const p6 = basePort + perFamily + i;
  for (const [hosts, port] of [[hosts4, p4], [hosts6, p6]] as const) {
    for (const hostname of hosts) {
      const l = Deno.listen({ hostname, port });
      listeners.push(l);
      serve(l);
    }
  }
  v4Ports.push(p4);
  v6Ports.push(p6);
}

const nV6 = Math.round(conns * v6Fraction);
let next = 0;
async function one(i: number): Promise<void> {
  const v6 = i < nV6;
  const ports = v6 ? v6Ports : v4Ports;
  const hosts = v6 ? hosts6 : hosts4;
  const c = await Deno.connect({
    hostname: hosts[i % hosts.length],
    port: ports[Math.floor(i / hosts.length) % ports.length],
  });
  held.push(c);
  await writeAll(c, payload);
  await readExactly(c, bytes);
}
async function lane(): Promise<void> {
  while (next < conns) await one(next++);
}
await Promise.all(Array.from({ length: Math.min(256, conns) }, lane));
console.log(`ready ${conns} ${listeners.length}`);

function exit(): never {
  for (const c of held) {
    try {
      c.close();
    } catch { /* already closed */ }
  }
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", exit);
const sink = new Uint8Array(64);
while ((await Deno.stdin.read(sink)) !== null) { /* wait for EOF */ }
exit();
