/**
 * Worker half of the per-thread errno test: alternates two failing libc calls with different
 * errnos and posts how many reads after each saw the right one.
 */
import { errno, libc } from "../../ffi/libc.ts";

const path = new TextEncoder().encode("/nonexistent/xtcp2-errno\0");
let badf = 0;
let noent = 0;
const rounds = 10_000;
for (let i = 0; i < rounds; i++) {
  libc().close(-1);
  if (errno() === 9) badf++; // EBADF
  libc().open(path, 0);
  if (errno() === 2) noent++; // ENOENT
}
self.postMessage({ rounds, badf, noent });
self.close();
