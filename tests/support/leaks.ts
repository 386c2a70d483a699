/**
 * What a process holds, for leak tests: how many file descriptors it has open (listed through
 * libc: Deno's own readDir of /proc needs --allow-all) and how many io_uring mappings.
 *
 * @module
 */
import { listDir } from "../../ffi/libc.ts";

/** Open file descriptors of this process (the listing's own directory fd included). */
export function fdCount(): number {
  return listDir("/proc/self/fd").length;
}

/** Lines of /proc/self/maps that map an io_uring (`anon_inode:[io_uring]`). */
export function uringMappings(): number {
  return Deno.readTextFileSync("/proc/self/maps").split("\n").filter((l) => l.includes("io_uring"))
    .length;
}
