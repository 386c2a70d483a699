/**
 * Protobuf wire helpers over a plain byte array and a position: they return the new position.
 * The caller ensured the room. Used by the generated encoder (varints: `src/util/varint.ts`).
 *
 * @module
 */
import { varint32 } from "../util/varint.ts";

/**
 * Writes the length `n` and `n` bytes of `src` from `start` as a string's payload. Kernel names
 * are ASCII; any other byte becomes "?" so the string is always valid UTF-8.
 */
export function asciiBytes(
  o: Uint8Array,
  p: number,
  src: Uint8Array,
  start: number,
  n: number,
): number {
  p = varint32(o, p, n);
  for (let k = 0; k < n; k++) {
    const c = src[start + k];
    o[p++] = c >= 0x20 && c < 0x7f ? c : 0x3f;
  }
  return p;
}
