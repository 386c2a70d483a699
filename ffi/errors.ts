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
   * @param options the underlying error, if any
   */
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly context?: string,
    options?: ErrorOptions,
  ) {
    const code = errnoName(errno);
    super(
      `${op} failed: ${code} (errno ${errno}): ${errnoMessage(errno)}${
        context ? `: ${context}` : ""
      }`,
      options,
    );
    this.name = "OsError";
    this.code = code;
  }
}
