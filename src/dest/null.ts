/**
 * `null`: flushes go nowhere (for measuring the collection alone).
 *
 * @module
 */
import { SyncDest } from "./destination.ts";

/** Discards every flush. */
export class NullDest extends SyncDest {
  /** Always "null". */
  readonly scheme = "null";
  /** Does nothing. */
  sendSync(): void {}
  /** Nothing to release. */
  [Symbol.asyncDispose](): Promise<void> {
    return Promise.resolve();
  }
}
