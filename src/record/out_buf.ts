/**
 * A growable output byte buffer with protobuf varint helpers. Writers keep `pos` and call
 * {@link OutBuf.ensure} before a bounded burst of writes; nothing else allocates.
 *
 * @module
 */
import { varint32, varint64 } from "../util/varint.ts";

/** Growable byte buffer. */
export class OutBuf {
  /** The bytes; replaced (grown) by {@link OutBuf.ensure}. */
  u8: Uint8Array;
  /** A DataView of the same bytes (replaced with them). */
  dv: DataView;
  /** Write position. */
  pos = 0;
  /**
   * Whether views of the bytes stay valid when the buffer grows (true here: growing replaces the
   * buffer and leaves the old one to its views; a WebAssembly memory's views are detached unless
   * it is shared memory).
   */
  keepsViews = true;

  /** @param capacity initial size in bytes */
  constructor(capacity = 1 << 16) {
    this.u8 = new Uint8Array(new ArrayBuffer(capacity));
    this.dv = new DataView(this.u8.buffer);
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
    this.dv = new DataView(next.buffer);
  }

  /** Appends raw bytes (ensures room itself). */
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.u8.set(b, this.pos);
    this.pos += b.length;
  }

  /** Appends an unsigned 32-bit varint (caller ensured ≥ 5 bytes). */
  varint32(v: number): void {
    this.pos = varint32(this.u8, this.pos, v);
  }

  /** Appends a 64-bit varint given as two unsigned 32-bit halves (caller ensured ≥ 10 bytes). */
  varint64(lo: number, hi: number): void {
    this.pos = varint64(this.u8, this.pos, lo, hi);
  }
}
