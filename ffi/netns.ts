/**
 * Network namespaces without threads: `setns` the JS thread into a namespace, create a socket
 * there (it stays bound to that namespace for its whole life), and `setns` back to the thread's
 * home namespace, which is opened once (at startup, or on first use) and never taken from the
 * thread's current state again. Failing to return home is fatal: the thread would serve the
 * wrong namespace from then on, so every later use fails too.
 *
 * @module
 */
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY, sysClose, sysOpen, sysSetns } from "./libc.ts";
import { OwnedFd } from "./owned_fd.ts";
import { NetlinkSocket, type NetlinkSocketOptions } from "./netlink_socket.ts";
import { releaseAfter } from "../src/util/errors.ts";

/** Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`) read-only. */
export function openNetnsFd(path: string): number {
  return sysOpen(path, O_RDONLY | O_CLOEXEC);
}

/**
 * The thread could not return to its home network namespace after entering another one: it is
 * stuck in the wrong namespace. Fatal: the process must stop.
 */
export class NamespaceEscapeError extends Error {
  /** Always true: nothing this thread does afterwards can be trusted. */
  readonly fatal = true;
  /**
   * @param entered the namespace the thread entered and could not leave
   * @param cause the failed setns
   */
  constructor(readonly entered: string, cause: unknown) {
    super(
      `Cannot return to the daemon's own network namespace after entering ${entered}: ` +
        `the thread is stuck there: ${(cause as Error).message}`,
      { cause },
    );
    this.name = "NamespaceEscapeError";
  }
}

/**
 * The home network namespace of the calling thread, opened once.
 *
 * @example
 * ```ts
 * using home = NetnsHome.open();
 * using sock = home.openNetlinkSocketIn("/run/netns/blue");
 * ```
 */
export class NetnsHome extends OwnedFd {
  private broken: NamespaceEscapeError | undefined;

  private constructor(fd: number, readonly path: string) {
    super(fd);
  }

  /**
   * Opens the home namespace: by default the calling thread's namespace now
   * (`/proc/thread-self/ns/net`).
   */
  static open(path = "/proc/thread-self/ns/net"): NetnsHome {
    return new NetnsHome(openNetnsFd(path), path);
  }

  /** @internal */
  protected closedError(): Error {
    return new Error(`Home network namespace is closed: ${this.path}`);
  }

  /**
   * Runs `fn` with the calling thread inside the namespace `targetFd` (`context` names it in
   * errors), then returns the thread home, whatever `fn` did. Throws NamespaceEscapeError when
   * the return fails, and from then on at every call.
   */
  run<T>(targetFd: number, fn: () => T, context = `fd ${targetFd}`): T {
    if (this.broken) throw this.broken;
    const home = this.fd;
    sysSetns(targetFd, CLONE_NEWNET, context);
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: fn() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    try {
      sysSetns(home, CLONE_NEWNET, this.path);
    } catch (err) {
      this.broken = new NamespaceEscapeError(context, err);
      throw this.broken;
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** Creates a netlink socket inside the namespace at `path` (the socket stays bound to it). */
  openNetlinkSocketIn(path: string, opts: NetlinkSocketOptions = {}): NetlinkSocket {
    const fd = openNetnsFd(path);
    let sock: NetlinkSocket | undefined;
    try {
      sock = this.run(fd, () => (sock = NetlinkSocket.open(opts)), path);
    } catch (err) {
      // Made, but the way back failed: the socket is of no use to a process that must stop.
      if (sock) releaseAfter(err, () => sock?.close());
      releaseAfter(err, () => sysClose(fd));
      throw err;
    }
    sysClose(fd);
    return sock;
  }
}

let processHome: NetnsHome | undefined;

/**
 * The main thread's home namespace, opened on first use: for library callers that do not open
 * one themselves (the daemon opens its own at startup).
 */
export function defaultHome(): NetnsHome {
  return processHome ??= NetnsHome.open();
}

/** {@link NetnsHome.run} on the {@link defaultHome}. */
export function withNetns<T>(targetFd: number, fn: () => T, context?: string): T {
  return defaultHome().run(targetFd, fn, context);
}

/** {@link NetnsHome.openNetlinkSocketIn} on the {@link defaultHome}. */
export function openNetlinkSocketIn(path: string, opts: NetlinkSocketOptions = {}): NetlinkSocket {
  return defaultHome().openNetlinkSocketIn(path, opts);
}
