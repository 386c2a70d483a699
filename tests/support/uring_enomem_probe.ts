/**
 * Sets up an io_uring whose rings cannot all be mapped: RLIMIT_AS is lowered to what this
 * process maps now plus `headroom` bytes (argument 1), so io_uring_setup succeeds and a later
 * mmap fails with ENOMEM. Prints the error and how many fds and io_uring mappings the failed
 * setup left behind, as JSON.
 */
import { addressOf, readSmallFile, sysCall } from "../../ffi/libc.ts";
import { IoUring } from "../../ffi/uring.ts";
import { fdCount, uringMappings } from "./leaks.ts";

const SYS_PRLIMIT64 = Deno.build.arch === "x86_64" ? 302 : 261;
const RLIMIT_AS = 9;
const headroom = BigInt(Deno.args[0]);
const entries = Number(Deno.args[1]);

function vmSize(): bigint {
  const m = /VmSize:\s+(\d+) kB/.exec(readSmallFile("/proc/self/status"));
  if (!m) throw new Error("No VmSize in /proc/self/status");
  return BigInt(m[1]) * 1024n;
}

const old = new BigUint64Array(2); // struct rlimit { rlim_cur; rlim_max; }
const limited = new BigUint64Array(2);
sysCall("prlimit64", SYS_PRLIMIT64, 0, RLIMIT_AS, 0, addressOf(new Uint8Array(old.buffer)));
const fds = fdCount();
const maps = uringMappings();
limited[0] = vmSize() + headroom;
limited[1] = old[1];
sysCall("prlimit64", SYS_PRLIMIT64, 0, RLIMIT_AS, addressOf(new Uint8Array(limited.buffer)), 0);
let error = "";
try {
  IoUring.setup(entries).close();
} catch (err) {
  error = String(err);
}
sysCall("prlimit64", SYS_PRLIMIT64, 0, RLIMIT_AS, addressOf(new Uint8Array(old.buffer)), 0);
console.log(JSON.stringify({ error, fds: fdCount() - fds, maps: uringMappings() - maps }));
