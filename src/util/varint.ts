/**
 * Protobuf base-128 varints: writing at a position (the encoder's hot path: no allocation),
 * reading, and sizes.
 *
 * @module
 */

/**
 * Writes an unsigned 32-bit varint at `p`; returns the position after it. The caller ensured
 * the room (at most 5 bytes).
 *
 * @example
 * ```ts
 * const o = new Uint8Array(5);
 * varint32(o, 0, 300); // 2 (bytes 0xac 0x02)
 * ```
 */
export function varint32(o: Uint8Array, p: number, v: number): number {
  v >>>= 0;
  while (v > 0x7f) {
    o[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  o[p++] = v;
  return p;
}

/**
 * Writes a 64-bit varint given as two unsigned 32-bit halves at `p`; returns the position after
 * it (at most 10 bytes).
 *
 * @example
 * ```ts
 * const o = new Uint8Array(10);
 * varint64(o, 0, 0, 1); // 5: 2^32
 * ```
 */
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
 * Bytes a varint of `n` takes (any safe non-negative integer).
 *
 * @example
 * ```ts
 * varintSize(127); // 1
 * varintSize(128); // 2
 * ```
 */
export function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/**
 * The varint of a safe non-negative integer, as bytes (for framing; not the hot path).
 *
 * @example
 * ```ts
 * encodeVarint(300); // Uint8Array [0xac, 0x02]
 * ```
 */
export function encodeVarint(n: number): Uint8Array {
  const out = new Uint8Array(varintSize(n));
  let i = 0;
  while (n > 0x7f) {
    out[i++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i] = n;
  return out;
}

/** Reading past the end of the bytes, or a varint longer than a safe integer. */
export class VarintError extends RangeError {
  /**
   * @param reason what is wrong
   * @param offset where the varint starts
   */
  constructor(reason: string, readonly offset: number) {
    super(`${reason}: varint at offset ${offset}`);
    this.name = "VarintError";
  }
}

/**
 * Reads a varint (up to 2^53) at `at`; returns its value and the position after it. Throws
 * VarintError when it runs past `end` (default: the end of `b`) or is too long.
 *
 * @example
 * ```ts
 * readVarint(new Uint8Array([0xac, 0x02]), 0); // [300, 2]
 * ```
 */
export function readVarint(b: Uint8Array, at: number, end = b.length): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = at; i < end; i++) {
    const x = b[i] ?? 0;
    v += (x & 0x7f) * mul;
    if ((x & 0x80) === 0) return [v, i + 1];
    mul *= 128;
    if (mul > 2 ** 53) throw new VarintError("Varint too long", at);
  }
  throw new VarintError("Truncated varint", at);
}
