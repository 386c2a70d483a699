/**
 * Young-generation collections between polls. A scavenge pauses the thread it runs in for as
 * long as it takes to copy what survives; one that falls inside a poll lengthens that poll.
 * Collecting the young generation while the daemon waits for its next poll, once it is half full
 * or has less than {@link ROOM_BYTES} left, leaves every poll the room for what it allocates
 * (measured at 100k sockets with `-pipeline`: 0.8 MB a poll in the main thread, 0.3 MB in the
 * worker; nearly nothing without): no scavenge runs in it, or, where V8 shrank the young
 * generation below what a poll allocates, only a short one (little survives right after a
 * collection). Measured: in-poll scavenges of 3–5 ms (a young generation of 12 MB, collected
 * with a poll's live objects) became collections between polls.
 *
 * It needs V8's `gc` function: the daemon's tasks run deno with `--v8-flags=--expose-gc`. Without
 * it (a `deno run` with other flags) nothing is collected here and V8 collects on its own.
 *
 * @module
 */
import { getHeapSpaceStatistics } from "node:v8";

type Gc = (options: { type: "minor" | "major" }) => void;

/** Room a poll gets in the young generation at least (V8 keeps it at about 1 MB here). */
export const ROOM_BYTES = 512 * 1024;
const gc = (globalThis as { gc?: Gc }).gc;

/** Whether V8's `gc` function is exposed (`--v8-flags=--expose-gc`). */
export const canCollect = typeof gc === "function";

/**
 * Collects the young generation now if more of it is used than is left, or less than `room`
 * bytes are left; whether it did.
 *
 * @example
 * ```ts
 * collectYoung(); // between polls
 * ```
 */
export function collectYoung(room = ROOM_BYTES): boolean {
  if (!gc) return false;
  for (const s of getHeapSpaceStatistics()) {
    if (s.space_name !== "new_space") continue;
    // space_size counts both semi-spaces; what is left is in the one allocated from.
    const left = s.space_available_size;
    if (left >= room && s.space_used_size <= left) return false;
    gc({ type: "minor" });
    return true;
  }
  return false;
}
