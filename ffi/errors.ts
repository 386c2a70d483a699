/**
 * Typed errors of the FFI layer: a failed libc call names the operation and the errno.
 *
 * @module
 */
import { errnoMessage, errnoName } from "../src/util/errno.ts";

export { errnoMessage, errnoName };

/** A libc call failed. */
export class OsError extends Error {
  /** Symbolic errno, e.g. `EPERM`. */
  readonly code: string;

  /**
   * @param op the libc function (`socket`, `setns`, …)
   * @param errno the errno value read right after the call
   * @param context what the call was about (a path, a namespace), appended to the message
   */
  constructor(readonly op: string, readonly errno: number, readonly context?: string) {
    const code = errnoName(errno);
    super(
      `${op} failed: ${code} (errno ${errno}): ${errnoMessage(errno)}${
        context ? `: ${context}` : ""
      }`,
    );
    this.name = "OsError";
    this.code = code;
  }
}

/** Whether retrying the same call may succeed (interrupted, busy, out of buffers, timed out). */
export function isRetriable(err: unknown): boolean {
  return err instanceof OsError &&
    ["EINTR", "EAGAIN", "ENOBUFS", "EBUSY", "ETIMEDOUT"].includes(err.code);
}
