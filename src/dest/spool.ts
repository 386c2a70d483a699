/**
 * The disk spool behind the delivery queue (`--spoolDir`, `--spoolMaxBytes`): flushes that do not
 * fit in memory, and what is left unacknowledged at shutdown, are appended to segment files and
 * sent, oldest first, once the destination takes them again — after a reconnect or after a
 * restart of the daemon.
 *
 * Files: `seg-<n>.xsp`, each the 8 bytes `XTCPSPL1` then records of u32 length, u32 rows,
 * u32 CRC-32 of the bytes (little endian) and the bytes; and `cursor`, a line `<n> <offset>` for
 * each segment partly acknowledged (reading resumes there). A segment is fsynced when it is closed and at most `syncMs` after a write;
 * it is deleted once every record in it was acknowledged. A damaged segment (truncated, a bad
 * length, a bad CRC) is read up to the damage; the rest is counted, reported and cut off.
 *
 * @module
 */
import { crc32 } from "../util/crc32.ts";
import { errorMessage } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import { writeAllSync } from "../util/write_all.ts";

const MAGIC = new TextEncoder().encode("XTCPSPL1");
const RECORD_HEAD = 12;
const SEGMENT_NAME = /^seg-(\d{12})\.xsp$/;

/** One segment file. */
interface Segment {
  seq: number;
  path: string;
  /** Bytes of the file (magic and records). */
  size: number;
  /** Where the unread records start. */
  readFrom: number;
  /** Unread records, their rows and bytes (with their heads). */
  records: number;
  rows: number;
  bytes: number;
}

/** What the spool holds. */
export interface SpoolStats {
  envelopes: number;
  rows: number;
  bytes: number;
}

/** One record read back. */
export interface SpoolRecord {
  /** The flush (valid until the next {@link Spool.ack} or {@link Spool.peek} of another). */
  bytes: Uint8Array;
  rows: number;
}

/** Options of {@link Spool.open}. */
export interface SpoolOptions {
  /** Most bytes on disk (records and their heads). */
  maxBytes: number;
  /** Segment size at which a new segment starts (default: 8 MiB, at most maxBytes / 4). */
  segmentBytes?: number;
  /** Longest time a write stays unsynced, in ms (default 1000). */
  syncMs?: number;
  counters: Counters;
  log: Logger;
}

function segName(seq: number): string {
  return `seg-${String(seq).padStart(12, "0")}.xsp`;
}

function recordHead(bytes: Uint8Array, rows: number): Uint8Array {
  const head = new Uint8Array(RECORD_HEAD);
  const dv = new DataView(head.buffer);
  dv.setUint32(0, bytes.length, true);
  dv.setUint32(4, rows, true);
  dv.setUint32(8, crc32(bytes), true);
  return head;
}

/**
 * The valid records of a segment's bytes from `from`: where they end, and how many there are.
 * Stops at the first damage.
 */
function scan(data: Uint8Array, from: number): { end: number; records: number; rows: number } {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = from;
  let records = 0;
  let rows = 0;
  while (at + RECORD_HEAD <= data.length) {
    const len = dv.getUint32(at, true);
    const end = at + RECORD_HEAD + len;
    if (end > data.length) break;
    if (crc32(data.subarray(at + RECORD_HEAD, end)) !== dv.getUint32(at + 8, true)) break;
    rows += dv.getUint32(at + 4, true);
    records++;
    at = end;
  }
  return { end: at, records, rows };
}

/** Segments on disk, oldest first; appends go to the last one. */
export class Spool implements Disposable {
  /** Bytes found damaged (and cut off) since the spool was opened. */
  damagedBytes = 0;
  private readonly segs: Segment[] = [];
  private writer: { file: Deno.FsFile; seg: Segment; dirty: boolean } | undefined;
  private head: { seg: Segment; data: Uint8Array; dv: DataView } | undefined;
  /** Segment numbers start high, so flushes older than everything spooled fit in front. */
  private nextSeq = 1_000_000_000;
  private syncTimer: ReturnType<typeof setTimeout> | undefined;
  private cursorWrittenAt = 0;
  private readonly segmentBytes: number;

  private constructor(readonly dir: string, private readonly o: SpoolOptions) {
    this.segmentBytes = o.segmentBytes ??
      Math.max(64 * 1024, Math.min(8 * 1024 * 1024, Math.floor(o.maxBytes / 4)));
  }

  /**
   * Opens (creating) the spool in `dir` and takes stock of what a previous run left there.
   *
   * @example
   * ```ts
   * using spool = Spool.open("/var/lib/xtcp2/spool", { maxBytes: 1 << 30, counters, log });
   * ```
   */
  static open(dir: string, o: SpoolOptions): Spool {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const s = new Spool(dir, o);
    s.load();
    return s;
  }

  private load(): void {
    const resume = new Map<number, number>();
    try {
      for (const line of Deno.readTextFileSync(`${this.dir}/cursor`).split("\n")) {
        const [seq, offset] = line.trim().split(" ").map(Number);
        if (Number.isInteger(seq) && Number.isInteger(offset)) resume.set(seq ?? 0, offset ?? 0);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        this.o.log.error(
          `Spool ${this.dir}: unreadable cursor, reading every segment from its start: ${
            errorMessage(err)
          }`,
        );
      }
    }
    const seqs = [...Deno.readDirSync(this.dir)]
      .map((e) => SEGMENT_NAME.exec(e.name)?.[1])
      .filter((m): m is string => m !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    for (const seq of seqs) {
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
      const path = `${this.dir}/${segName(seq)}`;
      const data = Deno.readFileSync(path);
      const magicOk = data.length >= MAGIC.length &&
        MAGIC.every((b, i) => data[i] === b);
      let from = MAGIC.length;
      const offset = resume.get(seq) ?? 0;
      if (offset > from && offset <= data.length) from = offset;
      const { end, records, rows } = magicOk ? scan(data, from) : { end: 0, records: 0, rows: 0 };
      if (end < data.length) {
        const lost = data.length - Math.max(end, from);
        this.damagedBytes += lost;
        this.o.counters.inc("destSpool", "damaged", "bytes", lost);
        this.o.log.error(
          `Spool segment ${path} is damaged at byte ${end}: ${lost} bytes after it cannot be read and are dropped`,
        );
        if (!magicOk || records === 0) {
          Deno.removeSync(path);
          continue;
        }
        Deno.truncateSync(path, end);
      }
      if (records === 0) {
        Deno.removeSync(path);
        continue;
      }
      this.segs.push({
        seq,
        path,
        size: end,
        readFrom: from,
        records,
        rows,
        bytes: end - from,
      });
    }
    const st = this.stats;
    if (st.envelopes > 0) {
      this.o.log.info(
        `Spool ${this.dir}: ${st.envelopes} envelopes (${st.rows} rows, ${st.bytes} bytes) left by the last run, sent first`,
      );
    }
  }

  /** What the spool holds (unacknowledged records). */
  get stats(): SpoolStats {
    let envelopes = 0;
    let rows = 0;
    let bytes = 0;
    for (const s of this.segs) {
      envelopes += s.records;
      rows += s.rows;
      bytes += s.bytes;
    }
    return { envelopes, rows, bytes };
  }

  /** Whether nothing is waiting. */
  get empty(): boolean {
    return this.segs.every((s) => s.records === 0);
  }

  private diskBytes(): number {
    let n = 0;
    for (const s of this.segs) n += s.size;
    return n;
  }

  /** Appends one flush; false (nothing written) when it would exceed maxBytes. */
  append(bytes: Uint8Array, rows: number): boolean {
    const need = RECORD_HEAD + bytes.length;
    if (this.diskBytes() + need + (this.writer ? 0 : MAGIC.length) > this.o.maxBytes) return false;
    const w = this.writer ?? this.openWriter();
    const head = recordHead(bytes, rows);
    if (w.seg.size === 0) {
      writeAllSync(w.file, MAGIC);
      w.seg.size = MAGIC.length;
      w.seg.readFrom = MAGIC.length;
    }
    writeAllSync(w.file, head);
    writeAllSync(w.file, bytes);
    w.seg.size += need;
    w.seg.bytes += need;
    w.seg.records++;
    w.seg.rows += rows;
    w.dirty = true;
    this.o.counters.inc("destSpool", "appended", "rows", rows);
    this.o.counters.inc("destSpool", "appended", "bytes", bytes.length);
    if (w.seg.size >= this.segmentBytes) this.roll();
    else this.syncTimer ??= setTimeout(() => this.sync(), this.o.syncMs ?? 1000);
    return true;
  }

  private openWriter(): { file: Deno.FsFile; seg: Segment; dirty: boolean } {
    const seq = this.nextSeq++;
    const path = `${this.dir}/${segName(seq)}`;
    const file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
    const seg: Segment = { seq, path, size: 0, readFrom: 0, records: 0, rows: 0, bytes: 0 };
    this.segs.push(seg);
    this.writer = { file, seg, dirty: false };
    return this.writer;
  }

  /** Makes what was appended durable (fsync). */
  sync(): void {
    if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.writer?.dirty) {
      this.writer.file.syncSync();
      this.writer.dirty = false;
    }
  }

  /** Closes the segment being written (fsynced): later appends start a new one. */
  private roll(): void {
    const w = this.writer;
    if (!w) return;
    this.sync();
    w.file.close();
    this.writer = undefined;
  }

  /** The oldest unacknowledged record, or undefined when there is none. */
  peek(): SpoolRecord | undefined {
    for (;;) {
      if (!this.head) {
        const seg = this.segs[0];
        if (!seg) return undefined;
        if (this.writer?.seg === seg) this.roll(); // read only closed segments
        const data = Deno.readFileSync(seg.path);
        this.head = { seg, data, dv: new DataView(data.buffer, data.byteOffset, data.byteLength) };
      }
      const { seg, data, dv } = this.head;
      const at = seg.readFrom;
      if (seg.records > 0 && at + RECORD_HEAD <= data.length) {
        const len = dv.getUint32(at, true);
        const end = at + RECORD_HEAD + len;
        const bytes = data.subarray(at + RECORD_HEAD, end);
        if (end <= data.length && crc32(bytes) === dv.getUint32(at + 8, true)) {
          return { bytes, rows: dv.getUint32(at + 4, true) };
        }
        // Changed on disk since it was checked: what follows cannot be trusted.
        const lost = data.length - at;
        this.damagedBytes += lost;
        this.o.counters.inc("destSpool", "damaged", "bytes", lost);
        this.o.log.error(
          `Spool segment ${seg.path} is damaged at byte ${at}: ${lost} bytes dropped`,
        );
      }
      this.removeHead();
    }
  }

  /** The record {@link Spool.peek} returned was delivered: it is removed. */
  ack(): void {
    const h = this.head;
    if (!h || h.seg.records === 0) throw new Error("Spool ack without a record to acknowledge");
    const { seg, dv } = h;
    const at = seg.readFrom;
    const len = RECORD_HEAD + dv.getUint32(at, true);
    seg.readFrom += len;
    seg.bytes -= len;
    seg.records--;
    seg.rows -= dv.getUint32(at + 4, true);
    if (seg.records === 0) this.removeHead();
    else if (Date.now() - this.cursorWrittenAt > 1000) this.writeCursor();
  }

  private removeHead(): void {
    const seg = this.head?.seg ?? this.segs[0];
    this.head = undefined;
    if (!seg) return;
    if (this.writer?.seg === seg) this.roll();
    this.segs.shift();
    Deno.removeSync(seg.path);
    this.writeCursor();
  }

  /**
   * Drops the oldest segment that is not being read (to make room); returns what it held, or
   * undefined when there is no such segment.
   */
  dropOldest(): SpoolStats | undefined {
    const i = this.head ? 1 : 0;
    const seg = this.segs[i];
    if (!seg || seg === this.writer?.seg) return undefined;
    this.segs.splice(i, 1);
    Deno.removeSync(seg.path);
    return { envelopes: seg.records, rows: seg.rows, bytes: seg.bytes };
  }

  private writeCursor(): void {
    const lines = this.segs.filter((s) => s.readFrom > MAGIC.length).map((s) =>
      `${s.seq} ${s.readFrom}\n`
    );
    const tmp = `${this.dir}/cursor.tmp`;
    Deno.writeTextFileSync(tmp, lines.join(""), { mode: 0o600 });
    Deno.renameSync(tmp, `${this.dir}/cursor`);
    this.cursorWrittenAt = Date.now();
  }

  /**
   * Writes flushes that are older than everything spooled in front of it (at shutdown, what the
   * memory queue still held); returns how many fit.
   */
  prepend(entries: readonly { bytes: Uint8Array; rows: number }[]): number {
    let size = MAGIC.length;
    let n = 0;
    for (const e of entries) {
      if (this.diskBytes() + size + RECORD_HEAD + e.bytes.length > this.o.maxBytes) break;
      size += RECORD_HEAD + e.bytes.length;
      n++;
    }
    if (n === 0) return 0;
    const seq = (this.segs[0]?.seq ?? this.nextSeq) - 1;
    const path = `${this.dir}/${segName(seq)}`;
    const seg: Segment = {
      seq,
      path,
      size: 0,
      readFrom: MAGIC.length,
      records: 0,
      rows: 0,
      bytes: 0,
    };
    using file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
    writeAllSync(file, MAGIC);
    seg.size = MAGIC.length;
    for (const e of entries.slice(0, n)) {
      const head = recordHead(e.bytes, e.rows);
      writeAllSync(file, head);
      writeAllSync(file, e.bytes);
      seg.size += RECORD_HEAD + e.bytes.length;
      seg.bytes += RECORD_HEAD + e.bytes.length;
      seg.records++;
      seg.rows += e.rows;
    }
    file.syncSync();
    this.segs.unshift(seg);
    this.head = undefined; // reading starts again from the new front
    return n;
  }

  /** Syncs and closes the segment being written, and records where reading resumes. */
  [Symbol.dispose](): void {
    this.roll();
    this.writeCursor();
  }
}
