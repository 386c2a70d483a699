/**
 * The one error classifier: whether an error is worth retrying, ends the process, or is
 * permanent. Errors say so themselves (`retriable` or `fatal` properties, errno names in `code`),
 * and a wrapped error is judged by its `cause` chain.
 *
 * @module
 */

/** How an error should be met. */
export type ErrorKind =
  /** The process cannot go on correctly (e.g. its thread is stuck in another namespace). */
  | "fatal"
  /** The same operation may succeed later: retry, reconnect, reopen. */
  | "retriable"
  /** Retrying the same thing gives the same answer (bad config, kernel refusal, bad bytes). */
  | "permanent";

/** errno names (and Node/Deno error codes) that a later attempt may not meet. */
const RETRIABLE_CODES: ReadonlySet<string> = new Set([
  "EINTR",
  "EAGAIN",
  "EWOULDBLOCK",
  "ENOBUFS",
  "EBUSY",
  "ETIMEDOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ENOTCONN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
]);

/** Deno's error classes for conditions that pass. */
const RETRIABLE_DENO: readonly (new (...args: never[]) => Error)[] = [
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.BrokenPipe,
  Deno.errors.TimedOut,
  Deno.errors.Interrupted,
  Deno.errors.WouldBlock,
];

/**
 * How to meet `err`: looks at the error, then along its `cause` chain, for a `fatal` or
 * `retriable` property, a retriable errno name in `code`, or one of Deno's transient network
 * errors. Anything else is permanent.
 *
 * @example
 * ```ts
 * errorKind(new Deno.errors.ConnectionRefused("x")); // "retriable"
 * errorKind(new Error("bad", { cause: new Deno.errors.BrokenPipe("y") })); // "retriable"
 * ```
 */
export function errorKind(err: unknown): ErrorKind {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (typeof e !== "object") break;
    const o = e as { fatal?: unknown; retriable?: unknown; code?: unknown; cause?: unknown };
    if (o.fatal === true) return "fatal";
    if (o.retriable === true) return "retriable";
    if (o.retriable === false) return "permanent";
    if (typeof o.code === "string" && RETRIABLE_CODES.has(o.code)) return "retriable";
    if (RETRIABLE_DENO.some((c) => e instanceof c)) return "retriable";
    e = o.cause;
  }
  return "permanent";
}

/**
 * Whether a later attempt of the same operation may succeed.
 *
 * @example
 * ```ts
 * isRetriable(new Deno.errors.TimedOut("connect")); // true
 * ```
 */
export function isRetriable(err: unknown): boolean {
  return errorKind(err) === "retriable";
}

/**
 * Whether the process must stop.
 *
 * @example
 * ```ts
 * isFatal(new Error("x")); // false
 * ```
 */
export function isFatal(err: unknown): boolean {
  return errorKind(err) === "fatal";
}

/**
 * The peer received the data and refused it for good (too large, malformed, not allowed): sending
 * the same bytes again gives the same answer. Only destinations throw it, and only for such an
 * answer; every other failure (a peer away, a timeout, an unknown error) is worth retrying.
 *
 * @example
 * ```ts
 * throw new RefusedError("Nsqd refused the message: E_BAD_MESSAGE");
 * ```
 */
export class RefusedError extends Error {
  /** Never: the same bytes get the same answer. */
  readonly retriable = false;
  /** Always true: see {@link isRefused}. */
  readonly refused = true;
  /**
   * @param message what the peer said
   * @param options the peer's own error, if any
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RefusedError";
  }
}

/**
 * Whether a destination says the peer refused the data for good ({@link RefusedError} anywhere
 * along the `cause` chain).
 *
 * @example
 * ```ts
 * isRefused(new Error("send", { cause: new RefusedError("too large") })); // true
 * ```
 */
export function isRefused(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 8; depth++) {
    if ((e as { refused?: unknown }).refused === true) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * The message of anything thrown (an Error's message, or its text).
 *
 * @example
 * ```ts
 * errorMessage(new Error("No route")); // "No route"
 * ```
 */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Cleanup failures that happened while an error propagated, oldest first. The error that broke
 * the operation is what is thrown, unchanged (same object, class and message); what failed while
 * releasing after it is kept here rather than replacing it.
 */
export interface Suppressing {
  suppressed?: unknown[];
}

/**
 * Records `failure` (a cleanup's error) on `err` (the error being thrown): appended to
 * `err.suppressed`, see {@link Suppressing}. Where `err` cannot carry it (not an object, or
 * frozen), the failure is dropped: `err` wins.
 *
 * @example
 * ```ts
 * const err = new Error("Dump failed");
 * suppress(err, new Error("Cancel failed"));
 * (err as Suppressing).suppressed; // [Error: Cancel failed]
 * ```
 */
export function suppress(err: unknown, failure: unknown): void {
  if (typeof err !== "object" || err === null || !Object.isExtensible(err)) return;
  const e = err as Suppressing;
  if (Array.isArray(e.suppressed)) e.suppressed.push(failure);
  else e.suppressed = [failure];
}

/**
 * Runs `cleanup` while `err` propagates: if it throws, its error is {@link suppress}ed onto
 * `err` instead of replacing it.
 *
 * @example
 * ```ts
 * const fd = sysSocket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
 * try {
 *   sysBind(fd, addr);
 * } catch (err) {
 *   releaseAfter(err, () => sysClose(fd));
 *   throw err;
 * }
 * ```
 */
export function releaseAfter(err: unknown, cleanup: () => void): void {
  try {
    cleanup();
  } catch (failure) {
    suppress(err, failure);
  }
}
