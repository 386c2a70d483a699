/**
 * Datagram destinations never send more than a datagram carries: protobufList flushes are split
 * at row boundaries into complete envelopes, line formats at line ends; what cannot fit alone is
 * counted and reported.
 *
 * @module
 */
import type { Destination, DestOptions, Framing } from "./destination.ts";
import { splitFlush } from "./split.ts";

/** Splits each flush into datagrams of at most `max` bytes and sends them in order. */
export abstract class DatagramDest implements Destination {
  /** Scheme, for counters and logs. */
  abstract readonly scheme: string;

  /**
   * @param opts marshaller, counters, log
   * @param max largest datagram payload
   */
  constructor(protected readonly opts: DestOptions, protected readonly max: number) {}

  /** Sends one datagram; false when it was dropped (a full receiver queue), counted by the caller. */
  protected abstract sendOne(b: Uint8Array): Promise<boolean>;

  /** Releases the socket. */
  abstract [Symbol.asyncDispose](): Promise<void>;

  /** Sends one flush as one or more datagrams. */
  async send(bytes: Uint8Array, framing: Framing): Promise<void> {
    const { pieces, dropped } = splitFlush(bytes, this.max, this.opts.marshal, framing);
    if (dropped) {
      this.opts.counters.inc(this.scheme, "tooLarge", "error", dropped);
      this.opts.log.error(
        `${this.scheme}: ${dropped} ${
          this.opts.marshal === "protobufList" || framing === "lines" ? "record(s)" : "flush(es)"
        } larger than a datagram (${this.max} bytes) not sent`,
      );
    }
    if (pieces.length > 1) this.opts.counters.inc(this.scheme, "split", "count", pieces.length);
    for (const p of pieces) {
      if (!(await this.sendOne(p))) {
        this.opts.counters.inc(this.scheme, "queueFull", "drop");
        this.opts.counters.inc(this.scheme, "queueFullBytes", "drop", p.length);
        continue;
      }
      this.opts.counters.inc(this.scheme, "Writes");
      this.opts.counters.inc(this.scheme, "WriteBytes", "count", p.length);
    }
  }
}
