/**
 * Reads errno after a failing libc call (close(-1): EBADF) `count` times; run with
 * `--v8-flags=--trace-gc`, the garbage collections printed show whether reading errno allocates.
 * Prints `errno <name> <count>` with the name of the last errno read and how many reads saw EBADF.
 */
import { errno, libc } from "../../ffi/libc.ts";
import { errnoName } from "../../ffi/errors.ts";

const count = Number(Deno.args[0]);
const EBADF = 9;
const close = libc().close;
let last = 0;
let bad = 0;
const pass = (n: number) => {
  for (let i = 0; i < n; i++) {
    close(-1);
    last = errno();
    if (last === EBADF) bad++;
  }
};
pass(20_000); // warm up: optimise
bad = 0;
console.log("MARK-BEGIN");
pass(count);
console.log("MARK-END");
console.log(`errno ${errnoName(last)} ${bad}`);
