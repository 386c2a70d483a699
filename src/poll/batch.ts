/**
 * Sockets into envelope rows, for one decoding thread: the row filter (`--changesOnly`,
 * `--socketOwners`), `--modulus`, and the flush thresholds. The poller decodes with one, and so
 * does the pipeline's worker, so both write the same rows and flush at the same places.
 *
 * Two ways in, as a dump's sink: {@link RowBatcher.onSocket}, one socket at a time, and
 * {@link RowBatcher.onSockets}, a run of plain socket messages in one call of the encoder
 * (EnvelopeWriter.run: parse, locate and encode fused), taken wherever nothing looks at each
 * socket (no row filter, no modulus).
 *
 * @module
 */
import type { ParseOptions, ParseStats } from "../netlink/parse.ts";
import type { SocketView } from "../netlink/socket_view.ts";
import type { EnvelopeWriter } from "../record/encoder.ts";
import type { WalkExpect } from "../record/encoder_wasm.ts";
import type { RecordExtra } from "../record/extra.ts";
import type { StampBytes } from "../record/stamp.ts";
import type { NetlinkCounts } from "./netlink_counts.ts";
import { RowFilter, type RowOptions } from "./rows.ts";

/** Why an envelope was flushed (the original's counter names). */
export type FlushReason = "poll_end" | "poll_timeout" | "rows_cap" | "size_cap" | "shutdown";

/** Rows of one decoding thread. */
export class RowBatcher {
  /** `--changesOnly`, `--socketOwners` (undefined without either). */
  readonly rows: RowFilter | undefined;
  /** The stamp of the namespace being dumped. */
  stamp: StampBytes = { head: new Uint8Array(0), tail: new Uint8Array(0) };
  private maxRows = 10_000;
  private maxBytes = 786_432;
  private modulus = 1;
  private modulusCount = 0;
  private readonly expect: WalkExpect = { seq: 0, pid: 0, mask: 0 };

  /**
   * @param env where the rows go
   * @param rowOptions the row filter's options
   * @param counts where rows appended are counted
   * @param flush flushes `env` (called when a threshold is reached)
   */
  constructor(
    private readonly env: EnvelopeWriter,
    rowOptions: RowOptions,
    private readonly counts: NetlinkCounts,
    private readonly flush: (reason: FlushReason) => void,
  ) {
    this.rows = rowOptions.changesOnly || rowOptions.socketOwners
      ? new RowFilter(rowOptions, (view, extra) => this.addRow(view, extra))
      : undefined;
  }

  /** The thresholds and modulus of a poll (the modulus counts from its start). */
  beginPoll(maxRows: number, maxBytes: number, modulus: number): void {
    this.maxRows = maxRows;
    this.maxBytes = maxBytes;
    this.modulus = modulus;
    this.modulusCount = 0;
  }

  /** One socket (DumpSink.onSocket). */
  onSocket(view: SocketView): void {
    const rows = this.rows;
    if (rows !== undefined && !rows.wanted(view)) return;
    const modulus = this.modulus;
    if (modulus > 1 && (this.modulusCount++ % modulus) !== 1) {
      rows?.leftOut();
      return;
    }
    this.addRow(view, rows?.extraFor(view));
  }

  /**
   * A run of plain socket messages in one call of the writer (DumpSink.onSockets, parse.ts
   * SocketRun), with the flushes {@link RowBatcher.onSocket} makes; none where a row filter or
   * the modulus looks at each socket, or the dump's seq or port id are not known.
   */
  onSockets(
    view: SocketView,
    off: number,
    end: number,
    opts: ParseOptions,
    stats: ParseStats,
  ): number {
    if (this.rows !== undefined || this.modulus > 1 || opts.expectSeq < 0 || opts.expectPid < 0) {
      return off;
    }
    const env = this.env;
    const expect = this.expect;
    expect.seq = opts.expectSeq;
    expect.pid = opts.expectPid;
    expect.mask = opts.mask;
    for (;;) {
      off = env.run(view, off, end, expect, this.stamp, this.maxRows, this.maxBytes);
      const w = env.walked;
      if (w.rows === 0) return off;
      stats.messages += w.rows;
      stats.sockets += w.rows;
      stats.attrShort += w.attrShort;
      stats.attrSkipped += w.attrSkipped;
      this.counts.appended += w.rows;
      this.flushIfFull();
      if (off >= end) return off;
    }
  }

  private addRow(view: SocketView, extra: RecordExtra | undefined): void {
    this.env.add(view, this.stamp, extra);
    this.counts.appended++;
    this.flushIfFull();
  }

  private flushIfFull(): void {
    const env = this.env;
    if (env.rows >= this.maxRows) this.flush("rows_cap");
    else if (env.byteLength > this.maxBytes) this.flush("size_cap");
  }
}
