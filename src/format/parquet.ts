/**
 * A Parquet file writer (format 2.x, readable by ClickHouse, DuckDB, Arrow, Spark): flat schemas
 * of REQUIRED INT32, INT64 and BYTE_ARRAY columns, PLAIN encoding, one data page (v1) per column
 * chunk, compressed with the file's codec (none, snappy, gzip, zstd), statistics (min, max, null
 * count) on every chunk, the footer in Thrift's compact protocol. The caller hands each row group
 * as one buffer of PLAIN values per column (see `parquet_records.ts`); nothing here is per row.
 *
 * @module
 */
import { gzipSync } from "node:zlib";
import snappy from "snappyjs";
import * as zstd from "@bokuweb/zstd-wasm";

import type { ParquetCodec } from "./parquet_codec.ts";

/** What a column holds, and so its physical type and annotation. */
export type ColumnKind = "uint32" | "int32" | "uint64" | "int64" | "string" | "bytes";

/** One column of a flat schema. */
export interface ColumnDef {
  readonly name: string;
  readonly kind: ColumnKind;
}

/** Bytes one PLAIN value takes in a fixed-width column (0: a byte array). */
export function kindWidth(kind: ColumnKind): number {
  switch (kind) {
    case "uint32":
    case "int32":
      return 4;
    case "uint64":
    case "int64":
      return 8;
    default:
      return 0;
  }
}

// Parquet's enums (parquet.thrift).
const TYPE_INT32 = 1;
const TYPE_INT64 = 2;
const TYPE_BYTE_ARRAY = 6;
const CONVERTED_UTF8 = 0;
const CONVERTED_UINT_32 = 13;
const CONVERTED_UINT_64 = 14;
const ENCODING_PLAIN = 0;
const ENCODING_RLE = 3;
const PAGE_DATA = 0;
const CODEC_ID: Record<ParquetCodec, number> = { none: 0, snappy: 1, gzip: 2, zstd: 6 };

// Thrift compact protocol type ids.
const CT_TRUE = 1;
const CT_FALSE = 2;
const CT_BYTE = 3;
const CT_I32 = 5;
const CT_I64 = 6;
const CT_BINARY = 8;
const CT_LIST = 9;
const CT_STRUCT = 12;

/** Thrift compact protocol, the writing half: structs, lists, ints, binaries. */
class Thrift {
  private buf = new Uint8Array(4096);
  private p = 0;
  private last: number[] = [0];

  private room(n: number): void {
    if (this.p + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.p + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.p));
    this.buf = next;
  }

  private byte(b: number): void {
    this.room(1);
    this.buf[this.p++] = b;
  }

  private uvarint(v: number): void {
    this.room(10);
    while (v > 0x7f) {
      this.buf[this.p++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.p++] = v;
  }

  private zigzag(v: number): void {
    this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  private header(id: number, type: number): void {
    const delta = id - (this.last[this.last.length - 1] ?? 0);
    if (delta > 0 && delta <= 15) this.byte((delta << 4) | type);
    else {
      this.byte(type);
      this.zigzag(id);
    }
    this.last[this.last.length - 1] = id;
  }

  i32(id: number, v: number): this {
    this.header(id, CT_I32);
    this.zigzag(v);
    return this;
  }

  i64(id: number, v: number): this {
    this.header(id, CT_I64);
    this.zigzag(v);
    return this;
  }

  i8(id: number, v: number): this {
    this.header(id, CT_BYTE);
    this.byte(v & 0xff);
    return this;
  }

  bool(id: number, v: boolean): this {
    this.header(id, v ? CT_TRUE : CT_FALSE);
    return this;
  }

  binary(id: number, b: Uint8Array | string): this {
    this.header(id, CT_BINARY);
    this.rawBinary(typeof b === "string" ? enc.encode(b) : b);
    return this;
  }

  private rawBinary(b: Uint8Array): void {
    this.uvarint(b.length);
    this.room(b.length);
    this.buf.set(b, this.p);
    this.p += b.length;
  }

  /** A struct field: `body` writes its fields. */
  struct(id: number, body: (t: this) => void): this {
    this.header(id, CT_STRUCT);
    this.inStruct(body);
    return this;
  }

  private inStruct(body: (t: this) => void): void {
    this.last.push(0);
    body(this);
    this.byte(0);
    this.last.pop();
  }

  private listHeader(id: number, n: number, elem: number): void {
    this.header(id, CT_LIST);
    if (n < 15) this.byte((n << 4) | elem);
    else {
      this.byte(0xf0 | elem);
      this.uvarint(n);
    }
  }

  /** A list of structs. */
  structs<T>(id: number, items: readonly T[], body: (t: this, item: T, i: number) => void): this {
    this.listHeader(id, items.length, CT_STRUCT);
    items.forEach((item, i) => this.inStruct((t) => body(t, item, i)));
    return this;
  }

  /** A list of i32 (enums). */
  i32s(id: number, items: readonly number[]): this {
    this.listHeader(id, items.length, CT_I32);
    for (const v of items) this.zigzag(v);
    return this;
  }

  /** A list of strings. */
  strings(id: number, items: readonly string[]): this {
    this.listHeader(id, items.length, CT_BINARY);
    for (const s of items) this.rawBinary(enc.encode(s));
    return this;
  }

  /** Ends the top-level struct and returns its bytes. */
  end(): Uint8Array {
    this.byte(0);
    return this.buf.subarray(0, this.p);
  }
}

const enc = new TextEncoder();
const MAGIC = enc.encode("PAR1");

let zstdReady: Promise<void> | undefined;

/**
 * Loads what `codec` needs (zstd's WebAssembly); call once before writing with it.
 *
 * @example
 * ```ts
 * await loadCodec("zstd");
 * ```
 */
export async function loadCodec(codec: ParquetCodec): Promise<void> {
  if (codec === "zstd") await (zstdReady ??= zstd.init());
}

/** `b` compressed with `codec` (loaded by {@link loadCodec}). */
export function compress(codec: ParquetCodec, b: Uint8Array): Uint8Array {
  switch (codec) {
    case "none":
      return b;
    case "snappy":
      return snappy.compress(b);
    case "gzip":
      return new Uint8Array(gzipSync(b));
    case "zstd":
      return zstd.compress(b, 3);
  }
}

/** Min and max of one chunk, as Parquet's statistics bytes (undefined for an empty chunk). */
interface MinMax {
  min: Uint8Array;
  max: Uint8Array;
}

function compareBytes(
  a: Uint8Array,
  ao: number,
  al: number,
  b: Uint8Array,
  bo: number,
  bl: number,
) {
  const n = Math.min(al, bl);
  for (let i = 0; i < n; i++) {
    const d = a[ao + i] - b[bo + i];
    if (d !== 0) return d;
  }
  return al - bl;
}

/** Min and max of `rows` PLAIN values of `kind` in `data`, ordered as the column's type. */
function minMax(kind: ColumnKind, data: Uint8Array, rows: number): MinMax | undefined {
  if (rows === 0) return undefined;
  const width = kindWidth(kind);
  if (width === 0) {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let minAt = 4, minLen = dv.getUint32(0, true), maxAt = 4, maxLen = minLen;
    for (let p = 0, i = 0; i < rows; i++) {
      const len = dv.getUint32(p, true);
      const at = p + 4;
      if (compareBytes(data, at, len, data, minAt, minLen) < 0) [minAt, minLen] = [at, len];
      if (compareBytes(data, at, len, data, maxAt, maxLen) > 0) [maxAt, maxLen] = [at, len];
      p = at + len;
    }
    return {
      min: data.slice(minAt, minAt + minLen),
      max: data.slice(maxAt, maxAt + maxLen),
    };
  }
  const words = new Uint32Array(data.buffer, data.byteOffset, (rows * width) / 4);
  if (width === 4) {
    const signed = kind === "int32";
    let min = signed ? words[0] | 0 : words[0], max = min;
    for (let i = 1; i < rows; i++) {
      const v = signed ? words[i] | 0 : words[i];
      if (v < min) min = v;
      else if (v > max) max = v;
    }
    const out = new Uint8Array(8);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, min >>> 0, true);
    dv.setUint32(4, max >>> 0, true);
    return { min: out.subarray(0, 4), max: out.subarray(4, 8) };
  }
  // 64-bit: compare the high words (signed for int64), then the low ones (unsigned).
  const signed = kind === "int64";
  const hi = (i: number) => (signed ? words[2 * i + 1] | 0 : words[2 * i + 1]);
  const lo = (i: number) => words[2 * i];
  let min = 0, max = 0;
  for (let i = 1; i < rows; i++) {
    const h = hi(i);
    const hmin = hi(min);
    if (h < hmin || (h === hmin && lo(i) < lo(min))) min = i;
    const hmax = hi(max);
    if (h > hmax || (h === hmax && lo(i) > lo(max))) max = i;
  }
  return { min: data.slice(min * 8, min * 8 + 8), max: data.slice(max * 8, max * 8 + 8) };
}

/** What the footer says of one written column chunk. */
interface ChunkMeta {
  offset: number;
  uncompressed: number;
  compressed: number;
  values: number;
  stats: MinMax | undefined;
}

interface RowGroupMeta {
  rows: number;
  offset: number;
  uncompressed: number;
  compressed: number;
  chunks: ChunkMeta[];
}

/**
 * Writes one Parquet file in memory: {@link ParquetWriter.writeRowGroup} per row group, then
 * {@link ParquetWriter.finish} for the file's bytes.
 *
 * @example
 * ```ts
 * await loadCodec("zstd");
 * const w = new ParquetWriter([{ name: "n", kind: "uint64" }], "zstd");
 * w.writeRowGroup(1, [new Uint8Array(8)]);
 * const file = w.finish();
 * ```
 */
export class ParquetWriter {
  private parts: Uint8Array[] = [MAGIC];
  private offset = MAGIC.length;
  private readonly groups: RowGroupMeta[] = [];
  /** Rows written. */
  rows = 0;

  /**
   * @param columns the flat schema
   * @param codec the compression of every page ({@link loadCodec} first)
   * @param createdBy the footer's created_by
   */
  constructor(
    readonly columns: readonly ColumnDef[],
    readonly codec: ParquetCodec,
    private readonly createdBy = "xtcp2",
  ) {}

  /** Bytes of the file so far (compressed pages and headers). */
  get size(): number {
    return this.offset;
  }

  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.offset += b.length;
  }

  /**
   * Appends a row group of `rows` rows: `data[i]` holds the PLAIN values of column i (a fixed-
   * width column exactly rows × width bytes, a byte array column rows × (u32 length, bytes)).
   * The buffers are only read during the call.
   */
  writeRowGroup(rows: number, data: readonly Uint8Array[]): void {
    if (rows === 0) return;
    if (data.length !== this.columns.length) {
      throw new RangeError(`${data.length} column buffers for ${this.columns.length} columns`);
    }
    const group: RowGroupMeta = {
      rows,
      offset: this.offset,
      uncompressed: 0,
      compressed: 0,
      chunks: [],
    };
    this.columns.forEach((col, i) => {
      const plain = data[i] ?? new Uint8Array(0);
      const width = kindWidth(col.kind);
      if (width > 0 && plain.length !== rows * width) {
        throw new RangeError(`column ${col.name}: ${plain.length} bytes for ${rows} rows`);
      }
      const stats = minMax(col.kind, plain, rows);
      const body = compress(this.codec, plain);
      const header = new Thrift()
        .i32(1, PAGE_DATA)
        .i32(2, plain.length)
        .i32(3, body.length)
        .struct(
          5,
          (t) => t.i32(1, rows).i32(2, ENCODING_PLAIN).i32(3, ENCODING_RLE).i32(4, ENCODING_RLE),
        )
        .end().slice();
      const chunk: ChunkMeta = {
        offset: this.offset,
        uncompressed: header.length + plain.length,
        compressed: header.length + body.length,
        values: rows,
        stats,
      };
      this.push(header);
      // The caller may reuse its buffers: keep a copy when nothing was compressed.
      this.push(body === plain ? plain.slice() : body);
      group.chunks.push(chunk);
      group.uncompressed += chunk.uncompressed;
      group.compressed += chunk.compressed;
    });
    this.groups.push(group);
    this.rows += rows;
  }

  /**
   * The file: what was written, then the footer, after `headroom` bytes left free for the
   * caller (a header of its own, without another copy of the file). The writer is done.
   */
  finish(headroom = 0): Uint8Array {
    const t = new Thrift()
      .i32(1, 1)
      .structs(2, [undefined, ...this.columns], (t, col) => {
        if (!col) {
          t.binary(4, "schema").i32(5, this.columns.length);
          return;
        }
        schemaElement(t, col);
      })
      .i64(3, this.rows)
      .structs(4, this.groups, (t, g, gi) => {
        t.structs(1, g.chunks, (t, c, ci) => {
          const col = this.columns[ci];
          if (!col) throw new RangeError("chunk without column");
          t.i64(2, c.offset).struct(3, (t) => {
            t.i32(1, physical(col.kind))
              .i32s(2, [ENCODING_PLAIN, ENCODING_RLE])
              .strings(3, [col.name])
              .i32(4, CODEC_ID[this.codec])
              .i64(5, c.values)
              .i64(6, c.uncompressed)
              .i64(7, c.compressed)
              .i64(9, c.offset);
            t.struct(12, (t) => {
              t.i64(3, 0);
              if (c.stats) t.binary(5, c.stats.max).binary(6, c.stats.min);
            });
          });
        })
          .i64(2, g.uncompressed)
          .i64(3, g.rows)
          .i64(5, g.offset)
          .i64(6, g.compressed)
          .i32(7, gi);
      })
      .binary(6, this.createdBy)
      // Min and max are ordered as each column's type says (unsigned for UINT_*).
      .structs(7, this.columns, (t) => t.struct(1, () => {}));
    const footer = t.end();
    const tail = new Uint8Array(8);
    new DataView(tail.buffer).setUint32(0, footer.length, true);
    tail.set(MAGIC, 4);
    this.push(footer);
    this.push(tail);
    const out = new Uint8Array(headroom + this.offset);
    let p = headroom;
    for (const part of this.parts) {
      out.set(part, p);
      p += part.length;
    }
    this.parts = [];
    return out;
  }
}

function physical(kind: ColumnKind): number {
  const w = kindWidth(kind);
  return w === 4 ? TYPE_INT32 : w === 8 ? TYPE_INT64 : TYPE_BYTE_ARRAY;
}

/** One leaf of the schema: type, REQUIRED, name, and its annotation. */
function schemaElement(t: Thrift, col: ColumnDef): void {
  t.i32(1, physical(col.kind)).i32(3, 0).binary(4, col.name);
  switch (col.kind) {
    case "uint32":
      t.i32(6, CONVERTED_UINT_32).struct(
        10,
        (t) => t.struct(10, (t) => t.i8(1, 32).bool(2, false)),
      );
      return;
    case "uint64":
      t.i32(6, CONVERTED_UINT_64).struct(
        10,
        (t) => t.struct(10, (t) => t.i8(1, 64).bool(2, false)),
      );
      return;
    case "string":
      t.i32(6, CONVERTED_UTF8).struct(10, (t) => t.struct(1, () => {}));
      return;
    default:
      return;
  }
}
