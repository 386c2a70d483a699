/**
 * Dump sinks that turn sockets into output bytes: protobufList envelopes (the fast encoder) and
 * JSON lines (the field table, allocating; for people and small dumps).
 *
 * @module
 */
import type { DumpSink } from "../netlink/dump.ts";
import type { SocketView } from "../netlink/socket_view.ts";
import { type EnvelopeMark, EnvelopeWriter } from "../record/encoder.ts";
import type { Stamp } from "../record/stamp.ts";
import { recordJson } from "../record/values.ts";

/** Appends every socket as a row of one protobufList envelope. */
export class EnvelopeSink implements DumpSink {
  /** The envelope being filled. */
  readonly writer: EnvelopeWriter;
  /** Metadata stamped on each row; set it before each namespace's dump. */
  stamp: Stamp;
  private mark: EnvelopeMark;

  /** @param stamp initial metadata */
  constructor(stamp: Stamp, writer = new EnvelopeWriter()) {
    this.stamp = stamp;
    this.writer = writer;
    this.mark = writer.mark();
  }
  /** Encodes one row. */
  onSocket(view: SocketView): void {
    this.writer.add(view, this.stamp);
  }
  /** Remembers the current position. */
  checkpoint(): void {
    this.mark = this.writer.mark();
  }
  /** Drops rows since the last checkpoint. */
  rollback(): void {
    this.writer.rollback(this.mark);
  }
}

/** Collects one JSON line per socket. */
export class JsonLinesSink implements DumpSink {
  /** Lines so far (each without its newline). */
  readonly lines: string[] = [];
  /** Metadata stamped on each line. */
  stamp: Stamp;
  private mark = 0;

  /** @param stamp initial metadata */
  constructor(stamp: Stamp) {
    this.stamp = stamp;
  }
  /** Renders one socket. */
  onSocket(view: SocketView): void {
    this.lines.push(recordJson(view, this.stamp));
  }
  /** Remembers the current position. */
  checkpoint(): void {
    this.mark = this.lines.length;
  }
  /** Drops lines since the last checkpoint. */
  rollback(): void {
    this.lines.length = this.mark;
  }
  /** All lines, newline-terminated, as bytes; empties the sink. */
  take(): Uint8Array {
    const text = this.lines.length ? this.lines.join("\n") + "\n" : "";
    this.lines.length = 0;
    this.mark = 0;
    return new TextEncoder().encode(text);
  }
}
