/**
 * Fan-out of live records to stream clients. Publishing costs one copy of the envelope's bytes
 * per flush (nothing without clients). Records are never decoded: each client pulls the encoded
 * rows (views into that copy) at its own pace, and they go out as they are. Each client has a
 * bounded queue: a slow or stuck client loses records (counted per client and in total), never
 * slows collection.
 *
 * @module
 */
import { envelopeRows } from "../record/envelope.ts";
import type { Counters } from "../util/log.ts";

/** One flushed envelope: its bytes, shared by every client, and its row count. */
interface Batch {
  bytes: Uint8Array;
  rows: number;
}

/** One stream client. */
export class Subscriber {
  /** Records dropped because the queue was full. */
  dropped = 0;
  /** Records delivered. */
  sent = 0;
  private readonly queue: Batch[] = [];
  private queuedRows = 0;
  private wake: (() => void) | undefined;
  private closed = false;

  /**
   * @param limit queue capacity in records; a whole envelope is queued or dropped, and an
   * envelope larger than the limit is still taken when the queue is empty
   * @param onDrop sees each drop (records)
   */
  constructor(readonly limit: number, private readonly onDrop: (n: number) => void) {}

  /** Queues an envelope, or drops it (counted) when it does not fit. */
  push(batch: Batch): void {
    if (this.closed) return;
    if (this.queuedRows > 0 && this.queuedRows + batch.rows > this.limit) {
      this.dropped += batch.rows;
      this.onDrop(batch.rows);
      return;
    }
    this.queue.push(batch);
    this.queuedRows += batch.rows;
    this.wake?.();
  }

  /** Ends the stream. */
  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /**
   * Yields queued records, each as its length prefix and encoded XtcpFlatRecord, until closed or
   * `signal` aborts.
   */
  async *records(signal: AbortSignal): AsyncGenerator<Uint8Array> {
    const onAbort = () => this.close();
    signal.addEventListener("abort", onAbort);
    try {
      while (!this.closed) {
        const batch = this.queue.shift();
        if (!batch) {
          await new Promise<void>((r) => (this.wake = r));
          this.wake = undefined;
          continue;
        }
        // The rows stay counted against the limit until they are handed over.
        let left = batch.rows;
        for (const row of envelopeRows(batch.bytes)) {
          if (this.closed) break;
          this.sent++;
          this.queuedRows--;
          left--;
          yield row;
        }
        this.queuedRows -= left;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/** Hands each flushed envelope to every subscriber. */
export class RecordHub {
  private readonly subs = new Set<Subscriber>();

  /** @param counters where drops are counted (xtcp_counts flatRecordServiceSend/chFull) */
  constructor(private readonly counters: Counters) {}

  /** Number of connected clients. */
  get size(): number {
    return this.subs.size;
  }

  /** A new client with a queue of `limit` records; `onDrop` also sees its drops. */
  subscribe(limit = 10_000, onDrop: (n: number) => void = () => {}): Subscriber {
    const s = new Subscriber(limit, (n) => {
      this.counters.inc("flatRecordServiceSend", "chFull", "drop", n);
      onDrop(n);
    });
    this.subs.add(s);
    return s;
  }

  /** Removes a client. */
  unsubscribe(s: Subscriber): void {
    s.close();
    this.subs.delete(s);
  }

  /**
   * Called by the poller with each flushed envelope (bytes valid during the call): one copy of
   * the bytes, nothing without clients.
   */
  publish(envelope: Uint8Array, rows: number): void {
    if (this.subs.size === 0) return;
    const batch = { bytes: envelope.slice(), rows };
    for (const s of this.subs) s.push(batch);
  }

  /** Ends every stream. */
  close(): void {
    for (const s of this.subs) s.close();
    this.subs.clear();
  }
}
