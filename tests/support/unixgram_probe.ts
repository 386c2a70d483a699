/**
 * A unixgram receiver that never reads, and a UnixDgramSocket sending it `count` datagrams of
 * `size` bytes (arguments 1 and 2). Prints, as JSON, how many sends returned true and false and
 * how long they took. Run with a timeout: a send that blocks never comes back.
 */
import { AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, sysBind, sysClose, sysSocket } from "../../ffi/libc.ts";
import { sockaddrUn, UnixDgramSocket } from "../../ffi/unix_dgram.ts";

const count = Number(Deno.args[0]);
const size = Number(Deno.args[1]);
const dir = Deno.makeTempDirSync();
const path = `${dir}/sink.sock`;
const receiver = sysSocket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
try {
  sysBind(receiver, sockaddrUn(path));
  using sock = UnixDgramSocket.connect(path);
  const payload = new Uint8Array(size).fill(0x78);
  let sent = 0;
  let dropped = 0;
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if (sock.send(payload) === true) sent++;
    else dropped++;
  }
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ sent, dropped, ms }));
} finally {
  sysClose(receiver);
  Deno.removeSync(dir, { recursive: true });
}
