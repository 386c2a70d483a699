/**
 * `stdout` and `stderr`: each flush written whole, synchronously.
 *
 * @module
 */
import { writeAllSync } from "../util/write_all.ts";
import { SyncDest } from "./destination.ts";

/** Writes flushes to the process's standard output or error. */
export class StdioDest extends SyncDest {
  /** @param scheme which stream */
  constructor(readonly scheme: "stdout" | "stderr") {
    super();
  }
  /** Writes one flush. */
  sendSync(bytes: Uint8Array): void {
    writeAllSync(this.scheme === "stdout" ? Deno.stdout : Deno.stderr, bytes);
  }
  /** Nothing to release (the streams stay open). */
  [Symbol.asyncDispose](): Promise<void> {
    return Promise.resolve();
  }
}
