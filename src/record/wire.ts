/**
 * Protobuf wire helpers over a plain byte array and a position: they return the new position.
 * The caller ensured the room. Used by the generated encoder.
 *
 * @module
 */

/** Writes an unsigned 32-bit varint. */
export function varint32(o: Uint8Array, p: number, v: number): number {
  v >>>= 0;
  while (v > 0x7f) {
    o[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  o[p++] = v;
  return p;
}

/** Writes a 64-bit varint given as two unsigned 32-bit halves. */
export function varint64(o: Uint8Array, p: number, lo: number, hi: number): number {
  lo >>>= 0;
  hi >>>= 0;
  if (hi === 0) return varint32(o, p, lo);
  for (let k = 0; k < 4; k++) {
    o[p++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  const mid = lo | ((hi & 7) << 4);
  hi >>>= 3;
  if (hi === 0) {
    o[p++] = mid;
    return p;
  }
  o[p++] = mid | 0x80;
  return varint32(o, p, hi);
}

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
