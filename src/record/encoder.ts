/**
 * The fast record encoder: writes `XtcpFlatRecord` wire bytes straight from the netlink receive
 * buffer into an output buffer, driven by a compiled form of the field table. No per-socket
 * objects: values are read with DataView into locals, 64-bit counters as two 32-bit halves.
 *
 * @module
 */
import { INET_DIAG_CONG } from "../netlink/constants.ts";
import { INET_DIAG_MSG_LEN } from "../netlink/constants.ts";
import type { SocketView } from "../netlink/socket_view.ts";
import {
  congestionEnum,
  cstrLen,
  FIELDS,
  READ_ADDR16,
  READ_BE16,
  READ_BIT0,
  READ_BITS12,
  READ_CONG_ENUM,
  READ_CSTR,
  READ_NIB_HI,
  READ_NIB_LO,
  READ_U16,
  READ_U32,
  READ_U64,
  READ_U8,
  SRC_META,
  SRC_MSG,
} from "./fields.ts";
import { OutBuf } from "./out_buf.ts";
import type { Stamp } from "./stamp.ts";

/** Wire type of each proto type. */
function wireType(type: string): number {
  return type === "string" || type === "bytes" ? 2 : 0;
}

/** Room reserved per record for the kernel fields, excluding strings (their length is added). */
const KERNEL_BYTES_BOUND = 2048;

/**
 * Encodes records. Build one and reuse it for every socket.
 *
 * @example
 * ```ts
 * const enc = new RecordEncoder();
 * const out = new OutBuf();
 * enc.encode(view, stamp, out); // appends one XtcpFlatRecord (no length prefix)
 * ```
 */
export class RecordEncoder {
  // Compiled program: groups (a source each) of fields in field-number order.
  private readonly gSrc: Int32Array;
  private readonly gStart: Int32Array;
  private readonly gEnd: Int32Array;
  private readonly fOff: Int32Array;
  private readonly fRead: Uint8Array;
  private readonly fWidth: Uint8Array;
  private readonly fOpt: Uint8Array;
  private readonly fTagLen: Uint8Array;
  private readonly fTag0: Uint8Array;
  private readonly fTag1: Uint8Array;
  private readonly fTag2: Uint8Array;

  /** Compiles the program for the kernel fields of {@link FIELDS}. */
  constructor() {
    const kernel = FIELDS.filter((s) => s.src !== SRC_META);
    const groups: number[] = [];
    for (const s of kernel) if (!groups.includes(s.src)) groups.push(s.src);
    const ordered = groups.flatMap((g) => kernel.filter((s) => s.src === g));
    const n = ordered.length;
    this.gSrc = new Int32Array(groups);
    this.gStart = new Int32Array(groups.length);
    this.gEnd = new Int32Array(groups.length);
    this.fOff = new Int32Array(n);
    this.fRead = new Uint8Array(n);
    this.fWidth = new Uint8Array(n);
    this.fOpt = new Uint8Array(n);
    this.fTagLen = new Uint8Array(n);
    this.fTag0 = new Uint8Array(n);
    this.fTag1 = new Uint8Array(n);
    this.fTag2 = new Uint8Array(n);
    ordered.forEach((s, i) => {
      const g = groups.indexOf(s.src);
      if (i === 0 || ordered[i - 1].src !== s.src) this.gStart[g] = i;
      this.gEnd[g] = i + 1;
      this.fOff[i] = s.off;
      this.fRead[i] = s.read;
      this.fWidth[i] = s.width;
      this.fOpt[i] = s.optional ? 1 : 0;
      let tag = (s.number << 3) | wireType(s.type);
      const bytes: number[] = [];
      while (tag > 0x7f) {
        bytes.push((tag & 0x7f) | 0x80);
        tag >>>= 7;
      }
      bytes.push(tag);
      this.fTagLen[i] = bytes.length;
      this.fTag0[i] = bytes[0];
      this.fTag1[i] = bytes[1] ?? 0;
      this.fTag2[i] = bytes[2] ?? 0;
    });
  }

  /** Appends one encoded XtcpFlatRecord for `view` (stamped with `stamp`) to `out`. */
  encode(view: SocketView, stamp: Stamp, out: OutBuf): void {
    const congLen = view.attrOff[INET_DIAG_CONG] >= 0 ? view.attrLen[INET_DIAG_CONG] : 0;
    out.ensure(stamp.head.length + stamp.tail.length + KERNEL_BYTES_BOUND + congLen);
    out.u8.set(stamp.head, out.pos);
    out.pos += stamp.head.length;
    if (view.index !== 0) {
      out.varint32(60 << 3); // record_counter: tag e0 03
      out.varint32(view.index);
    }
    out.u8.set(stamp.tail, out.pos);
    out.pos += stamp.tail.length;

    const src = view.u8;
    const dv = view.dv;
    const o = out.u8;
    const attrOff = view.attrOff;
    const attrLen = view.attrLen;
    const fOff = this.fOff;
    const fRead = this.fRead;
    const fWidth = this.fWidth;
    const fOpt = this.fOpt;
    const fTagLen = this.fTagLen;
    const fTag0 = this.fTag0;
    const fTag1 = this.fTag1;
    const fTag2 = this.fTag2;
    let p = out.pos;
    for (let g = 0; g < this.gSrc.length; g++) {
      const s = this.gSrc[g];
      let base: number;
      let len: number;
      if (s === SRC_MSG) {
        base = view.msg;
        len = INET_DIAG_MSG_LEN;
      } else {
        base = attrOff[s];
        if (base < 0) continue;
        len = attrLen[s];
      }
      for (let i = this.gStart[g], end = this.gEnd[g]; i < end; i++) {
        const rel = fOff[i];
        if (rel + fWidth[i] > len) continue;
        const at = base + rel;
        let v = 0;
        switch (fRead[i]) {
          case READ_U8:
            v = src[at];
            break;
          case READ_U16:
            v = src[at] | (src[at + 1] << 8);
            break;
          case READ_U32:
            v = dv.getUint32(at, true);
            break;
          case READ_BE16:
            v = (src[at] << 8) | src[at + 1];
            break;
          case READ_NIB_LO:
            v = src[at] & 0x0f;
            break;
          case READ_NIB_HI:
            v = src[at] >>> 4;
            break;
          case READ_BIT0:
            v = src[at] & 1;
            break;
          case READ_BITS12:
            v = (src[at] >>> 1) & 3;
            break;
          case READ_CONG_ENUM:
            v = congestionEnum(src, base, base + len);
            break;
          case READ_U64: {
            let lo = dv.getUint32(at, true);
            let hi = dv.getUint32(at + 4, true);
            if (lo === 0 && hi === 0 && fOpt[i] === 0) continue;
            o[p++] = fTag0[i];
            if (fTagLen[i] > 1) o[p++] = fTag1[i];
            if (fTagLen[i] > 2) o[p++] = fTag2[i];
            if (hi === 0) {
              while (lo > 0x7f) {
                o[p++] = (lo & 0x7f) | 0x80;
                lo >>>= 7;
              }
              o[p++] = lo;
            } else {
              for (let k = 0; k < 4; k++) {
                o[p++] = (lo & 0x7f) | 0x80;
                lo >>>= 7;
              }
              const mid = lo | ((hi & 7) << 4);
              hi >>>= 3;
              if (hi === 0) {
                o[p++] = mid;
              } else {
                o[p++] = mid | 0x80;
                while (hi > 0x7f) {
                  o[p++] = (hi & 0x7f) | 0x80;
                  hi >>>= 7;
                }
                o[p++] = hi;
              }
            }
            continue;
          }
          case READ_ADDR16: {
            o[p++] = fTag0[i];
            o[p++] = fTag1[i];
            o[p++] = 16;
            for (let k = 0; k < 16; k++) o[p++] = src[at + k];
            continue;
          }
          case READ_CSTR: {
            const n = cstrLen(src, base, base + len);
            if (n === 0 && fOpt[i] === 0) continue;
            o[p++] = fTag0[i];
            if (fTagLen[i] > 1) o[p++] = fTag1[i];
            if (fTagLen[i] > 2) o[p++] = fTag2[i];
            let m = n;
            while (m > 0x7f) {
              o[p++] = (m & 0x7f) | 0x80;
              m >>>= 7;
            }
            o[p++] = m;
            // Kernel names are ASCII; anything else would make the string invalid UTF-8.
            for (let k = 0; k < n; k++) {
              const c = src[base + k];
              o[p++] = c >= 0x20 && c < 0x7f ? c : 0x3f;
            }
            continue;
          }
        }
        if (v === 0 && fOpt[i] === 0) continue;
        o[p++] = fTag0[i];
        if (fTagLen[i] > 1) o[p++] = fTag1[i];
        if (fTagLen[i] > 2) o[p++] = fTag2[i];
        v >>>= 0;
        while (v > 0x7f) {
          o[p++] = (v & 0x7f) | 0x80;
          v >>>= 7;
        }
        o[p++] = v;
      }
    }
    out.pos = p;
  }
}

/** A position in an {@link EnvelopeWriter}, from {@link EnvelopeWriter.mark}. */
export interface EnvelopeMark {
  /** Byte position. */
  readonly pos: number;
  /** Row count. */
  readonly rows: number;
}

/** Field 10 (`row`) of Envelope, wire type 2. */
const ROW_TAG = (10 << 3) | 2;
/** Bytes reserved in front of the envelope for its varint length (protobufList framing). */
const PREFIX_ROOM = 5;

/**
 * Builds one `Envelope` (repeated XtcpFlatRecord row = 10) in place, and frames it for
 * protobufList as varint(len(Envelope)) ‖ Envelope. Reused across flushes.
 */
export class EnvelopeWriter {
  /** The output buffer (rows are appended to it). */
  readonly out: OutBuf;
  /** Rows in the current envelope. */
  rows = 0;
  private readonly encoder: RecordEncoder;

  /** @param capacity initial buffer size */
  constructor(capacity = 1 << 20, encoder = new RecordEncoder()) {
    this.out = new OutBuf(capacity);
    this.encoder = encoder;
    this.reset();
  }

  /** Empties the envelope. */
  reset(): void {
    this.out.pos = PREFIX_ROOM;
    this.rows = 0;
  }

  /** Size in bytes of the envelope so far (without the protobufList length prefix). */
  get byteLength(): number {
    return this.out.pos - PREFIX_ROOM;
  }

  /** Position to pass to {@link EnvelopeWriter.rollback} to drop rows appended after now. */
  mark(): EnvelopeMark {
    return { pos: this.out.pos, rows: this.rows };
  }

  /** Drops the rows appended since `mark` was taken. */
  rollback(mark: EnvelopeMark): void {
    this.out.pos = mark.pos;
    this.rows = mark.rows;
  }

  /** Appends one row for `view`. */
  add(view: SocketView, stamp: Stamp): void {
    const out = this.out;
    out.ensure(3);
    const tagAt = out.pos;
    out.u8[tagAt] = ROW_TAG;
    out.pos = tagAt + 3; // 2 bytes reserved for the row length: enough below 16 KiB
    this.encoder.encode(view, stamp, out);
    const bodyAt = tagAt + 3;
    const len = out.pos - bodyAt;
    const u8 = out.u8;
    if (len < 0x80) {
      u8[tagAt + 1] = len;
      u8.copyWithin(tagAt + 2, bodyAt, out.pos);
      out.pos -= 1;
    } else if (len < 0x4000) {
      u8[tagAt + 1] = (len & 0x7f) | 0x80;
      u8[tagAt + 2] = len >>> 7;
    } else {
      // Longer than 2 varint bytes: shift the body right to make room.
      let extra = 0;
      for (let v = len >>> 14; v > 0; v >>>= 7) extra++;
      out.ensure(extra);
      const b = out.u8;
      b.copyWithin(bodyAt + extra, bodyAt, out.pos);
      out.pos = tagAt + 1;
      out.varint32(len);
      out.pos = bodyAt + extra + len;
    }
    this.rows++;
  }

  /**
   * The protobufList bytes of the envelope: varint(len) ‖ Envelope. A view into the writer's
   * buffer, valid until the next change.
   */
  framed(): Uint8Array {
    const len = this.byteLength;
    let n = 1;
    for (let v = len >>> 7; v > 0; v >>>= 7) n++;
    const start = PREFIX_ROOM - n;
    const save = this.out.pos;
    this.out.pos = start;
    this.out.varint32(len);
    this.out.pos = save;
    return this.out.u8.subarray(start, save);
  }

  /** The bare Envelope bytes (no length prefix). A view, valid until the next change. */
  envelope(): Uint8Array {
    return this.out.u8.subarray(PREFIX_ROOM, this.out.pos);
  }
}
