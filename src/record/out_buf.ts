/**
 * A growable output byte buffer with protobuf varint helpers. Writers keep `pos` and call
 * {@link OutBuf.ensure} before a bounded burst of writes; nothing else allocates.
 *
 * @module
 */

/** Growable byte buffer. */
export class OutBuf {
  /** The bytes; replaced (grown) by {@link OutBuf.ensure}. */
  u8: Uint8Array;
  /** Write position. */
  pos = 0;

  /** @param capacity initial size in bytes */
  constructor(capacity = 1 << 16) {
    this.u8 = new Uint8Array(new ArrayBuffer(capacity));
  }

  /** Makes room for `n` more bytes past `pos`. */
  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.u8.length) return;
    let cap = this.u8.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(new ArrayBuffer(cap));
    next.set(this.u8.subarray(0, this.pos));
    this.u8 = next;
  }

  /** Appends raw bytes (ensures room itself). */
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.u8.set(b, this.pos);
    this.pos += b.length;
  }

  /** Appends an unsigned 32-bit varint (caller ensured ≥ 5 bytes). */
  varint32(v: number): void {
    const u8 = this.u8;
    let p = this.pos;
    v >>>= 0;
    while (v > 0x7f) {
      u8[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    u8[p++] = v;
    this.pos = p;
  }

  /** Appends a 64-bit varint given as two unsigned 32-bit halves (caller ensured ≥ 10 bytes). */
  varint64(lo: number, hi: number): void {
    if (hi === 0) {
      this.varint32(lo);
      return;
    }
    const u8 = this.u8;
    let p = this.pos;
    lo >>>= 0;
    hi >>>= 0;
    // First 28 bits come from lo alone.
    for (let i = 0; i < 4; i++) {
      u8[p++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    // Bits 28–34: 4 bits of lo and 3 of hi.
    let b = lo | ((hi & 0x7) << 4);
    hi >>>= 3;
    if (hi === 0) {
      u8[p++] = b;
      this.pos = p;
      return;
    }
    u8[p++] = b | 0x80;
    while (hi > 0x7f) {
      u8[p++] = (hi & 0x7f) | 0x80;
      hi >>>= 7;
    }
    b = hi;
    u8[p++] = b;
    this.pos = p;
  }
}

/** Number of bytes of the varint encoding of a non-negative 32-bit value. */
export function varint32Size(v: number): number {
  v >>>= 0;
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}
