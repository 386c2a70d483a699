/**
 * XtcpFlatRecord as Parquet: every field of the record (snake_case proto names, in field-number
 * order) plus `event_date` (the UTC date of timestamp_ns, `YYYY-MM-DD`). uint32 → INT32 (UINT_32),
 * uint64 → INT64 (UINT_64, read as UInt64 by ClickHouse, UBIGINT by DuckDB), int64 → INT64,
 * enums and bools (0, 1) → INT32, strings → BYTE_ARRAY (UTF8), addresses → BYTE_ARRAY. Every column is REQUIRED:
 * a field the row does not carry is 0 or empty, as proto3 reads it.
 *
 * {@link RecordColumns} decodes protobufList flushes straight into per-column PLAIN buffers:
 * one pass over each row's wire bytes, values written at their row's slot, no object per row.
 *
 * @module
 */
import { FIELDS, type ProtoType } from "../record/fields.ts";
import { ROW_TAG } from "../record/envelope.ts";
import { EnvelopeError, unframe } from "../record/envelope.ts";
import { type ColumnDef, type ColumnKind, kindWidth, ParquetWriter } from "./parquet.ts";
import type { ParquetCodec } from "./parquet_codec.ts";

const KIND: Record<ProtoType, ColumnKind> = {
  uint32: "uint32",
  uint64: "uint64",
  int64: "int64",
  enum: "int32",
  bool: "int32",
  string: "string",
  bytes: "bytes",
};

/** The columns of an xtcp2 Parquet object: the record's fields, then event_date. */
export const RECORD_COLUMNS: readonly ColumnDef[] = [
  ...FIELDS.map((f) => ({ name: f.name, kind: KIND[f.type] })),
  { name: "event_date", kind: "string" },
];

const TIMESTAMP_FIELD = 10;
const MAX_FIELD = Math.max(...FIELDS.map((f) => f.number));
/** Column of each proto field number (-1: not one of ours, skipped). */
const COLUMN_OF = new Int16Array(MAX_FIELD + 1).fill(-1);
FIELDS.forEach((f, i) => (COLUMN_OF[f.number] = i));
const EVENT_DATE = RECORD_COLUMNS.length - 1;
const TS_COLUMN = COLUMN_OF[TIMESTAMP_FIELD];

/** A growable byte buffer of PLAIN byte arrays (u32 length, bytes). */
class ByteColumn {
  buf = new Uint8Array(1024);
  len = 0;
  /** Values written. */
  count = 0;

  room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** Empty values up to `rows` (the rows that did not carry the field). */
  pad(rows: number): void {
    const n = rows - this.count;
    if (n <= 0) return;
    this.room(n * 4);
    this.buf.fill(0, this.len, this.len + n * 4);
    this.len += n * 4;
    this.count = rows;
  }

  push(src: Uint8Array, at: number, n: number): void {
    this.room(n + 4);
    const b = this.buf;
    let p = this.len;
    b[p++] = n & 0xff;
    b[p++] = (n >>> 8) & 0xff;
    b[p++] = (n >>> 16) & 0xff;
    b[p++] = n >>> 24;
    b.set(src.subarray(at, at + n), p);
    this.len = p + n;
    this.count++;
  }
}

/** The UTC date of a nanosecond timestamp given as two 32-bit halves, as `YYYY-MM-DD` bytes. */
function eventDate(lo: number, hi: number): Uint8Array {
  const ns = (BigInt(hi | 0) << 32n) | BigInt(lo >>> 0);
  const days = ns >= 0n ? ns / 86_400_000_000_000n : (ns + 1n) / 86_400_000_000_000n - 1n;
  return enc.encode(new Date(Number(days) * 86_400_000).toISOString().slice(0, 10));
}

const enc = new TextEncoder();

/**
 * Rows of xtcp2 records as Parquet columns, filled from protobufList flushes, emptied into a
 * {@link ParquetWriter} row group by row group.
 *
 * @example
 * ```ts
 * const cols = new RecordColumns();
 * cols.append(framedEnvelope);
 * const w = new ParquetWriter(RECORD_COLUMNS, "zstd");
 * cols.flushTo(w);
 * ```
 */
export class RecordColumns {
  /** Rows held. */
  rows = 0;
  private capacity = 1024;
  /**
   * Fixed-width columns: 32-bit words (two per 64-bit value, low word first), in the platform's
   * byte order, which is Parquet's little endian on every platform Deno runs on (x86-64,
   * AArch64); else undefined.
   */
  private readonly words: (Uint32Array | undefined)[];
  private readonly bytes: (ByteColumn | undefined)[];
  private readonly widths: number[];
  private readonly fixedRowBytes: number;
  private byteTotal = 0;
  private dateLo = -1;
  private dateHi = -1;
  private date = eventDate(0, 0);

  constructor() {
    this.widths = RECORD_COLUMNS.map((c) => kindWidth(c.kind));
    this.fixedRowBytes = this.widths.reduce((a, b) => a + b, 0);
    this.words = this.widths.map((w) => (w ? new Uint32Array((this.capacity * w) / 4) : undefined));
    this.bytes = this.widths.map((w) => (w ? undefined : new ByteColumn()));
  }

  /** PLAIN bytes held (an estimate of the uncompressed size). */
  get size(): number {
    return this.rows * this.fixedRowBytes + this.byteTotal;
  }

  private grow(): void {
    this.capacity *= 2;
    this.words.forEach((w, i) => {
      if (!w) return;
      const next = new Uint32Array((this.capacity * (this.widths[i] ?? 0)) / 4);
      next.set(w);
      this.words[i] = next;
    });
  }

  /**
   * Adds the rows of one protobufList flush (varint length ‖ Envelope); the bytes are only read
   * during the call. Throws EnvelopeError on bytes that are not one; the rows before the bad
   * one stay. Returns the rows added.
   */
  append(framed: Uint8Array): number {
    const env = unframe(framed);
    const before = this.rows;
    for (let p = 0; p < env.length;) {
      if (env[p] !== ROW_TAG) throw new EnvelopeError(`Unexpected tag byte ${env[p]}`, p);
      let len = 0;
      let shift = 0;
      let b: number;
      let q = p + 1;
      do {
        if (q >= env.length) throw new EnvelopeError("Truncated row length", p);
        b = env[q++];
        len += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b & 0x80);
      const end = q + len;
      if (end > env.length) throw new EnvelopeError("Row runs past the end", p);
      this.row(env, q, end);
      p = end;
    }
    return this.rows - before;
  }

  /** Decodes one record's fields into the columns at row `this.rows`. */
  private row(u8: Uint8Array, p: number, end: number): void {
    if (this.rows === this.capacity) this.grow();
    const r = this.rows;
    const words = this.words;
    while (p < end) {
      // Tag (field numbers here need at most 2 bytes; longer ones are read all the same).
      let tag = 0;
      let shift = 0;
      let b: number;
      do {
        b = u8[p++];
        tag += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b & 0x80 && p < end);
      const fn = Math.floor(tag / 8);
      const wt = tag & 7;
      const col = fn <= MAX_FIELD ? COLUMN_OF[fn] : -1;
      if (wt === 0) {
        let lo = 0;
        let hi = 0;
        shift = 0;
        do {
          if (p >= end) throw new EnvelopeError("Truncated varint", p);
          b = u8[p++];
          if (shift < 28) lo |= (b & 0x7f) << shift;
          else if (shift === 28) {
            lo |= (b & 0x0f) << 28;
            hi = (b & 0x7f) >>> 4;
          } else if (shift < 64) hi |= (b & 0x7f) << (shift - 32);
          shift += 7;
        } while (b & 0x80);
        if (col < 0) continue;
        const w = words[col];
        if (!w) continue;
        if (this.widths[col] === 8) {
          w[2 * r] = lo;
          w[2 * r + 1] = hi;
        } else w[r] = lo;
      } else if (wt === 2) {
        let len = 0;
        shift = 0;
        do {
          if (p >= end) throw new EnvelopeError("Truncated length", p);
          b = u8[p++];
          len += (b & 0x7f) * 2 ** shift;
          shift += 7;
        } while (b & 0x80);
        if (p + len > end) throw new EnvelopeError("Field runs past the row", p);
        const bc = col < 0 ? undefined : this.bytes[col];
        if (bc && bc.count <= r) {
          bc.pad(r);
          bc.push(u8, p, len);
          this.byteTotal += len + 4;
        }
        p += len;
      } else if (wt === 1) p += 8;
      else if (wt === 5) p += 4;
      else throw new EnvelopeError(`Wire type ${wt} in a record`, p);
    }
    const ts = TS_COLUMN >= 0 ? words[TS_COLUMN] : undefined;
    const lo = ts ? ts[2 * r] : 0;
    const hi = ts ? ts[2 * r + 1] : 0;
    if (lo !== this.dateLo || hi !== this.dateHi) {
      this.date = eventDate(lo, hi);
      this.dateLo = lo;
      this.dateHi = hi;
    }
    const dc = this.bytes[EVENT_DATE];
    if (dc) {
      dc.push(this.date, 0, this.date.length);
      this.byteTotal += this.date.length + 4;
    }
    this.rows = r + 1;
  }

  /** Writes the rows held as one row group of `w`, then holds none. */
  flushTo(w: ParquetWriter): void {
    const rows = this.rows;
    if (rows === 0) return;
    const data = this.widths.map((width, i) => {
      const words = this.words[i];
      if (words) return new Uint8Array(words.buffer, 0, rows * width);
      const bc = this.bytes[i];
      if (!bc) return new Uint8Array(0);
      bc.pad(rows);
      return bc.buf.subarray(0, bc.len);
    });
    w.writeRowGroup(rows, data);
    this.words.forEach((words, i) => words?.fill(0, 0, (rows * (this.widths[i] ?? 0)) / 4));
    for (const bc of this.bytes) {
      if (!bc) continue;
      bc.len = 0;
      bc.count = 0;
    }
    this.rows = 0;
    this.byteTotal = 0;
  }
}

/**
 * A Parquet object being built from flushes: row groups of at most `rowGroupBytes` PLAIN bytes.
 *
 * @example
 * ```ts
 * const o = new ParquetObject("zstd");
 * o.append(framed);
 * const file = o.finish();
 * ```
 */
export class ParquetObject {
  private readonly cols = new RecordColumns();
  private readonly writer: ParquetWriter;
  private flushedPlain = 0;

  /**
   * @param codec compression of every page (loaded by `loadCodec`)
   * @param rowGroupBytes PLAIN bytes per row group (default 64 MiB: one group per default object)
   */
  constructor(codec: ParquetCodec, private readonly rowGroupBytes = 64 << 20) {
    this.writer = new ParquetWriter(RECORD_COLUMNS, codec);
  }

  /** Rows in the object so far. */
  get rows(): number {
    return this.writer.rows + this.cols.rows;
  }

  /** Uncompressed (PLAIN) bytes of the object so far: what the size threshold compares. */
  get size(): number {
    return this.flushedPlain + this.cols.size;
  }

  /** Adds one protobufList flush; returns its rows. */
  append(framed: Uint8Array): number {
    const n = this.cols.append(framed);
    if (this.cols.size >= this.rowGroupBytes) this.flushGroup();
    return n;
  }

  private flushGroup(): void {
    this.flushedPlain += this.cols.size;
    this.cols.flushTo(this.writer);
  }

  /**
   * The object's bytes (the last row group written, the footer), after `headroom` free bytes
   * (see {@link ParquetWriter.finish}).
   */
  finish(headroom = 0): Uint8Array {
    this.flushGroup();
    return this.writer.finish(headroom);
  }
}
