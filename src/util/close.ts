/**
 * Closing what may be closed already.
 *
 * @module
 */

/**
 * Closes `resource` unless it is absent or already closed (Deno's BadResource); any other error
 * is thrown.
 *
 * @example
 * ```ts
 * closeIfOpen(conn); // a connection that may have failed and been closed
 * ```
 */
export function closeIfOpen(resource: { close(): void } | undefined): void {
  try {
    resource?.close();
  } catch (err) {
    if (!(err instanceof Deno.errors.BadResource)) throw err;
  }
}
