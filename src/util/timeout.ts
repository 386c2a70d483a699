/**
 * A promise that gives up: nothing waits without bound for a peer.
 *
 * @module
 */

/** An operation got no answer in time. Retriable: the peer may answer the next time. */
export class TimeoutError extends Error {
  /** Always true: a later attempt may succeed. */
  readonly retriable = true;
  /**
   * @param what the operation
   * @param ms how long it was given
   */
  constructor(readonly what: string, readonly ms: number) {
    super(`No answer within ${ms} ms: ${what}`);
    this.name = "TimeoutError";
  }
}

/**
 * `p`, or a rejection with a {@link TimeoutError} naming `what` after `ms`.
 *
 * @example
 * ```ts
 * await withTimeout(fetch("http://127.0.0.1:9088/readyz"), 3000, "readyz");
 * ```
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
