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

/**
 * The test's side: runs `script args…` (a process that answers through
 * {@link answerAndExit}) with every permission, and returns its answer; a failure names the
 * script, its exit code and signal, and its stderr.
 */
export async function askChdb<T>(script: string, args: string[]): Promise<T> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-all", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${script} failed (exit ${out.code}, signal ${out.signal}, ${out.stdout.length} bytes out): ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return JSON.parse(new TextDecoder().decode(out.stdout)) as T;
}
