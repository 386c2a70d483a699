/**
 * The fast record encoder: writes `XtcpFlatRecord` wire bytes straight from the netlink receive
 * buffer into an output buffer, through a WebAssembly function assembled from the field table
 * (encoder_wasm.ts) that copies the metadata stamp's bytes and writes the kernel fields. No
 * per-socket objects.
 *
 * @module
 */
import { INET_DIAG_CONG } from "../netlink/constants.ts";
import { SocketView } from "../netlink/socket_view.ts";
import { WasmKernelEncoder } from "./encoder_wasm.ts";
import { encodeExtra, type RecordExtra } from "./extra.ts";
import { ROW_TAG } from "./envelope.ts";
import { OutBuf } from "./out_buf.ts";
import type { StampBytes } from "./stamp.ts";

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
  private readonly kernel = new WasmKernelEncoder();

  /**
   * Appends one encoded XtcpFlatRecord for `view` (stamped with `stamp`, with the per-socket
   * additions of `extra` after the kernel fields) to `out`.
   */
  encode(view: SocketView, stamp: StampBytes, out: OutBuf, extra?: RecordExtra): void {
    const congLen = view.attrOff[INET_DIAG_CONG] >= 0 ? view.attrLen[INET_DIAG_CONG] : 0;
    const extraLen = extra ? extra.maxBytes : 0;
    const room = stamp.head.length + stamp.tail.length + KERNEL_BYTES_BOUND + congLen + extraLen;
    out.ensure(room);
    this.kernel.encodeInto(view, stamp, out, room);
    if (extra) out.pos = encodeExtra(extra, out.u8, out.pos);
  }

  /** An output buffer the kernel fields are written into in place (no copy). */
  outBuf(capacity: number): OutBuf {
    return this.kernel.outBuf(capacity);
  }

  /**
   * A receive buffer of `bytes` and a socket view that the encoder reads in place, for a
   * dumper's `source` option (netlink/dump.ts), once per encoder.
   */
  source(bytes: number): { recv: Uint8Array; view: SocketView } {
    const p = this.kernel.pin(bytes);
    return { recv: p.recv, view: new SocketView(p) };
  }
}

/** A position in an {@link EnvelopeWriter}, from {@link EnvelopeWriter.mark}. */
export interface EnvelopeMark {
  /** Byte position. */
  readonly pos: number;
  /** Row count. */
  readonly rows: number;
}

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
    this.out = encoder.outBuf(capacity);
    this.encoder = encoder;
    this.reset();
  }

  /** See {@link RecordEncoder.source}: where a dumper receives for this writer to read in place. */
  source(bytes: number): { recv: Uint8Array; view: SocketView } {
    return this.encoder.source(bytes);
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

  /** Appends one row for `view` (with the per-socket additions of `extra`). */
  add(view: SocketView, stamp: StampBytes, extra?: RecordExtra): void {
    const out = this.out;
    out.ensure(3);
    const tagAt = out.pos;
    out.u8[tagAt] = ROW_TAG;
    out.pos = tagAt + 3; // 2 bytes reserved for the row length: enough below 16 KiB
    this.encoder.encode(view, stamp, out, extra);
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
