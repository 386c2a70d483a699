/**
 * Network namespaces without threads: `setns` the JS thread into a namespace, create a socket
 * there (it stays bound to that namespace for its whole life), and `setns` back.
 *
 * @module
 */
import { OsError } from "./errors.ts";
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY, sysClose, sysOpen, sysSetns } from "./libc.ts";
import { NetlinkSocket, type NetlinkSocketOptions } from "./netlink_socket.ts";

/** Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`) read-only. */
export function openNetnsFd(path: string): number {
  return sysOpen(path, O_RDONLY | O_CLOEXEC);
}

/**
 * Runs `fn` with the calling thread inside the network namespace `targetFd`, then returns the
 * thread to its own namespace, whatever `fn` did. Failing to return is fatal for the daemon and
 * is thrown as an OsError saying so.
 */
export function withNetns<T>(targetFd: number, fn: () => T, context?: string): T {
  const origin = openNetnsFd("/proc/thread-self/ns/net");
  try {
    sysSetns(targetFd, CLONE_NEWNET, context);
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: fn() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    returnHome(origin);
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  } finally {
    sysClose(origin);
  }
}

function returnHome(origin: number): void {
  try {
    sysSetns(origin, CLONE_NEWNET);
  } catch (err) {
    throw new OsError(
      "setns",
      (err as OsError).errno,
      "the thread could not return to its own network namespace; it is unusable",
    );
  }
}

/** Creates a netlink socket inside the namespace at `path` (the socket stays bound to it). */
export function openNetlinkSocketIn(path: string, opts: NetlinkSocketOptions = {}): NetlinkSocket {
  const fd = openNetnsFd(path);
  try {
    return withNetns(fd, () => NetlinkSocket.open(opts), path);
  } finally {
    sysClose(fd);
  }
}
