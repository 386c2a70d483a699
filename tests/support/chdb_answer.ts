/**
 * How a process that ran libchdb (ClickHouse's engine) gives its answer: one line of JSON on
 * stdout, then an immediate `_exit`. libchdb's threads outlive the queries and crash the process
 * as it tears down (SIGSEGV after a complete answer, at the session's close or at exit, about one
 * run in three under load), so nothing is closed: the answer is written (console.log writes at
 * once) and the process leaves.
 *
 * @module
 */
import { sysExitNow } from "../../ffi/libc.ts";

/** Prints `answer` as JSON and ends the process at once, with status 0. */
export function answerAndExit(answer: unknown): never {
  console.log(JSON.stringify(answer));
  return sysExitNow(0);
}
