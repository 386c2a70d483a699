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
import {
  KERNEL_BYTES_BOUND,
  type WalkCounts,
  type WalkExpect,
  WasmKernelEncoder,
} from "./encoder_wasm.ts";
import { encodeExtra, type RecordExtra } from "./extra.ts";
import { ROW_TAG } from "./envelope.ts";
import { OutBuf } from "./out_buf.ts";
import type { StampBytes } from "./stamp.ts";
import type { Lease } from "../util/lease.ts";

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
  private readonly kernel: WasmKernelEncoder;

  /**
   * @param shared whether the output buffer ({@link RecordEncoder.outBuf}) is shared memory, as
   * an {@link EnvelopeWriter} needs to lend its flushes
   */
  constructor(shared = false) {
    this.kernel = new WasmKernelEncoder(shared);
    this.walk = this.kernel.walk.bind(this.kernel);
  }

  /** See {@link WasmKernelEncoder.walk}. */
  readonly walk: WasmKernelEncoder["walk"];

  /**
   * Appends one encoded XtcpFlatRecord for `view` (stamped with `stamp`, with the per-socket
   * additions of `extra` after the kernel fields) to `out`.
   */
  encode(
    view: SocketView,
    stamp: StampBytes,
    out: OutBuf,
    extra?: RecordExtra,
    room = this.room(view, stamp, extra),
  ): void {
    out.ensure(room);
    this.kernel.encodeInto(view, stamp, out, room);
    if (extra) out.pos = encodeExtra(extra, out.u8, out.pos);
  }

  /** What the last {@link RecordEncoder.walk} wrote and counted. */
  get walked(): WalkCounts {
    return this.kernel.walked;
  }

  /** The most bytes {@link RecordEncoder.encode} writes for these. */
  room(view: SocketView, stamp: StampBytes, extra?: RecordExtra): number {
    const congLen = view.attrOff[INET_DIAG_CONG] >= 0 ? view.attrLen[INET_DIAG_CONG] : 0;
    const extraLen = extra ? extra.maxBytes : 0;
    return stamp.head.length + stamp.tail.length + KERNEL_BYTES_BOUND + congLen + extraLen;
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
  /** Byte position, from the envelope's start. */
  readonly pos: number;
  /** Row count. */
  readonly rows: number;
}

/** Bytes reserved in front of the envelope for its varint length (protobufList framing). */
const PREFIX_ROOM = 5;
/** A row's bytes besides the encoder's: its tag, its length, and the length growing past 2 bytes. */
const ROW_OVERHEAD = 8;
/** Lent regions start on a cache line. */
const ALIGN = 64;
const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** A part of the writer's buffer lent out ({@link EnvelopeWriter.lend}). */
interface Region {
  readonly start: number;
  readonly end: number;
}

/**
 * Builds one `Envelope` (repeated XtcpFlatRecord row = 10) in place, and frames it for
 * protobufList as varint(len(Envelope)) ‖ Envelope. Reused across flushes.
 *
 * A flush can be lent instead of copied ({@link EnvelopeWriter.lend}): its bytes stay where they
 * were written, untouched, until the borrower releases them, and the next envelopes are written
 * elsewhere in the buffer (after it, or back at the start once it is free). The buffer is the
 * encoder's shared memory, whose views stay valid when it grows, so lent bytes stay readable
 * however far the writing goes.
 */
export class EnvelopeWriter {
  /** The output buffer (rows are appended to it). */
  readonly out: OutBuf;
  /** Rows in the current envelope. */
  rows = 0;
  private readonly encoder: RecordEncoder;
  /** Where the current envelope starts in the buffer. */
  private base = 0;
  /** Where it must end: the start of the next lent region above it (else no end). */
  private limit = Infinity;
  /** The regions lent and not yet released. */
  private readonly regions: Region[] = [];
  private lentBytes = 0;
  /**
   * The part of the buffer envelopes are written in, round and round, while some are lent: as
   * much as may be lent, and room for two more envelopes. Past it only when loans released out
   * of order leave no room inside.
   */
  private span = Infinity;

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
    this.out.pos = this.base + PREFIX_ROOM;
    this.rows = 0;
  }

  /** Size in bytes of the envelope so far (without the protobufList length prefix). */
  get byteLength(): number {
    return this.out.pos - this.base - PREFIX_ROOM;
  }

  /** Position to pass to {@link EnvelopeWriter.rollback} to drop rows appended after now. */
  mark(): EnvelopeMark {
    return { pos: this.out.pos - this.base, rows: this.rows };
  }

  /** Drops the rows appended since `mark` was taken (in the same envelope). */
  rollback(mark: EnvelopeMark): void {
    this.out.pos = this.base + mark.pos;
    this.rows = mark.rows;
  }

  /**
   * Lends the flush `bytes` (what the marshaller made of this envelope: a view of it, from
   * {@link EnvelopeWriter.framed} or {@link EnvelopeWriter.envelope}) instead of letting the
   * next envelope overwrite it: the next one starts where `reserve` bytes are free. Undefined,
   * and nothing lent, when `bytes` is not such a view, when growing the buffer would detach it
   * (an encoder made without `shared`), or when more than `most` bytes would be lent. Call
   * {@link EnvelopeWriter.reset} after, as after any flush.
   */
  lend(bytes: Uint8Array, reserve: number, most: number): Lease | undefined {
    const out = this.out;
    const start = bytes.byteOffset;
    const end = start + bytes.length;
    if (!out.keepsViews) return undefined;
    if (bytes.buffer !== out.u8.buffer || start < this.base || end > out.pos) return undefined;
    if (this.lentBytes + bytes.length > most) return undefined;
    const r: Region = { start, end };
    this.regions.push(r);
    this.lentBytes += bytes.length;
    this.span = most + 2 * reserve;
    this.moveTo(this.place(reserve, align(end)));
    let lent = true;
    return {
      release: () => {
        if (!lent) return;
        lent = false;
        this.regions.splice(this.regions.indexOf(r), 1);
        this.lentBytes -= r.end - r.start;
        if (this.rows === 0 && this.regions.length === 0) this.moveTo(0);
        else this.limit = this.limitFrom(this.base);
      },
    };
  }

  /** Bytes lent and not released, in how many regions. */
  get lent(): { bytes: number; regions: number } {
    return { bytes: this.lentBytes, regions: this.regions.length };
  }

  /** Starts the (empty) envelope at `at`. */
  private moveTo(at: number): void {
    this.base = at;
    this.limit = this.limitFrom(at);
    this.out.pos = at + PREFIX_ROOM;
  }

  /** The start of the first lent region at or above `at`, or Infinity. */
  private limitFrom(at: number): number {
    let limit = Infinity;
    for (const r of this.regions) if (r.start >= at && r.start < limit) limit = r.start;
    return limit;
  }

  /**
   * Where `size` bytes are free of lent regions: at `first` if they are and fit in the span
   * (round and round), else at the lowest place that is free: the start of the buffer, or past
   * a lent region (past them all, the buffer grows).
   */
  private place(size: number, first: number): number {
    const free = (at: number) => this.regions.every((r) => r.end <= at || r.start >= at + size);
    if (first + size <= this.span && free(first)) return first;
    const candidates = [0, ...this.regions.map((r) => align(r.end))].sort((a, b) => a - b);
    for (const at of candidates) if (free(at)) return at;
    return candidates[candidates.length - 1]!; // past the highest region: always free
  }

  /** Moves the envelope written so far to where it can grow by `room` without a lent region. */
  private relocate(room: number): void {
    const out = this.out;
    const used = out.pos - this.base;
    const from = this.base;
    const to = this.place(used + room, from);
    const end = to + used;
    if (end > out.pos) {
      const pos = out.pos;
      out.ensure(end - pos);
      out.pos = pos;
    }
    out.u8.copyWithin(to, from, from + used);
    this.base = to;
    this.limit = this.limitFrom(to);
    out.pos = end;
  }

  /**
   * Appends the rows of the plain socket messages of `view`'s datagram from `off` up to `end`,
   * in one call ({@link RecordEncoder.walk}): the rows {@link EnvelopeWriter.add} would append
   * for them one by one, byte for byte, until a message it leaves to the caller, until the
   * envelope holds `maxRows` rows or more than `maxBytes` bytes (flush it, and run on), or until
   * a row might need the buffer moved or grown (add does that). Returns the offset it stopped
   * at; {@link EnvelopeWriter.walked} counts what it did.
   */
  run(
    view: SocketView,
    off: number,
    end: number,
    expect: WalkExpect,
    stamp: StampBytes,
    maxRows: number,
    maxBytes: number,
  ): number {
    const out = this.out;
    const next = this.encoder.walk(
      view,
      stamp,
      out,
      off,
      end,
      expect,
      Math.min(this.limit, out.u8.length) - ROW_OVERHEAD,
      this.base + PREFIX_ROOM + maxBytes,
      maxRows - this.rows,
    );
    this.rows += this.encoder.walked.rows;
    return next;
  }

  /** What the last {@link EnvelopeWriter.run} wrote and counted. */
  get walked(): WalkCounts {
    return this.encoder.walked;
  }

  /** Appends one row for `view` (with the per-socket additions of `extra`). */
  add(view: SocketView, stamp: StampBytes, extra?: RecordExtra): void {
    const out = this.out;
    const room = this.encoder.room(view, stamp, extra);
    if (out.pos + room + ROW_OVERHEAD > this.limit) this.relocate(room + ROW_OVERHEAD);
    out.ensure(3);
    const tagAt = out.pos;
    out.u8[tagAt] = ROW_TAG;
    out.pos = tagAt + 3; // 2 bytes reserved for the row length: enough below 16 KiB
    this.encoder.encode(view, stamp, out, extra, room);
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
    const start = this.base + PREFIX_ROOM - n;
    const save = this.out.pos;
    this.out.pos = start;
    this.out.varint32(len);
    this.out.pos = save;
    return this.out.u8.subarray(start, save);
  }

  /** The bare Envelope bytes (no length prefix). A view, valid until the next change. */
  envelope(): Uint8Array {
    return this.out.u8.subarray(this.base + PREFIX_ROOM, this.out.pos);
  }
}
