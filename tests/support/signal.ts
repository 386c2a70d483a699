/**
 * Real signals for the EINTR tests: a process that sends SIGUSR1 to the thread running this
 * isolate (`deno test` runs test modules off the main thread) whenever it blocks in a given
 * system call, and a SIGUSR1 listener so Deno handles the signal
 * (SA_RESTART, which receives with SO_RCVTIMEO and io_uring waits ignore) instead of dying.
 *
 * @module
 */

import { sysCall } from "../../ffi/libc.ts";

const SCRIPT = new URL("./tgkill_blocked.py", import.meta.url).pathname;

/** System call numbers of this architecture. */
export const SYSCALL = Deno.build.arch === "x86_64"
  ? { recvmsg: 47, ioUringEnter: 426, gettid: 186 }
  : { recvmsg: 212, ioUringEnter: 426, gettid: 178 };

/**
 * Sends SIGUSR1 to the calling thread up to `count` times, each time it is seen blocked in system
 * call `nr`; gives up after `giveUpMs` without seeing it there. Resolves to the signals sent.
 */
export function interruptWhenBlocked(
  nr: number,
  count: number,
  giveUpMs = 1000,
): { sent: Promise<number> } {
  const tid = sysCall("gettid", SYSCALL.gettid);
  const child = new Deno.Command("/usr/bin/python3", {
    args: [
      SCRIPT,
      String(Deno.pid),
      String(tid),
      String(nr),
      String(count),
      String(giveUpMs / 1000),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  return {
    sent: child.output().then((o) => {
      if (!o.success) throw new Error(`Signal sender failed: exit code ${o.code}`);
      return Number(new TextDecoder().decode(o.stdout).trim());
    }),
  };
}

/** Runs `fn` with a SIGUSR1 listener installed; returns fn's result and the signals seen. */
export async function withSigusr1<T>(fn: () => Promise<T>): Promise<{ value: T; seen: number }> {
  let seen = 0;
  const onSignal = () => seen++;
  Deno.addSignalListener("SIGUSR1", onSignal);
  try {
    const value = await fn();
    // The listener runs on the event loop, which the blocked receive held up.
    for (let i = 0; i < 100 && seen === 0; i++) await new Promise((r) => setTimeout(r, 10));
    return { value, seen };
  } finally {
    Deno.removeSignalListener("SIGUSR1", onSignal);
  }
}
