/**
 * The pipelined poll (`--pipeline`): the JS thread only receives (FFI recvmsg straight into the
 * slots of a SharedArrayBuffer ring) and checks each datagram's framing and status, while a Worker
 * decodes, encodes and flushes the envelopes. Wall time approaches the kernel's dump alone; the
 * CPU cost is the same work plus the hand-off.
 *
 * Ring protocol (Int32Array over a SharedArrayBuffer, for Atomics.wait): `HEAD` counts slots
 * published by this thread, `TAIL` slots consumed by the worker; each slot has a kind, a length
 * and two arguments, read and written as unsigned 32-bit words (a netlink sequence number or
 * port id above 2^31 stays what it is).
 * Both sides wait with Atomics.wait on the other's counter. Control slots (stamp, checkpoint,
 * rollback, config, end of poll) travel in the same ring, so they stay in order with the data.
 *
 * @module
 */
import type { DatagramPipe, DumpSink } from "../netlink/dump.ts";
import type { StampBytes } from "../record/stamp.ts";
import type { PipelineSettings, RowSettings } from "./settings.ts";

/** Slot kinds. */
export const SLOT_DATA = 1;
export const SLOT_STAMP = 2;
export const SLOT_CHECKPOINT = 3;
export const SLOT_ROLLBACK = 4;
export const SLOT_END_POLL = 5;
export const SLOT_CONFIG = 6;
/** A namespace's dump ended: arg1 1 (it succeeded) or 0, arg2 its key. */
export const SLOT_NS_END = 7;
/** A namespace vanished: arg2 its key. */
export const SLOT_NS_DROP = 8;

/** Control words. */
export const HEAD = 0;
export const TAIL = 1;
/** 1 while someone wants every envelope (live streams). */
export const WANT_ENVELOPES = 2;
/** Set to 1 to make the worker leave its loop and exit. */
export const STOP = 3;
/** First slot's metadata: kind, length, arg1, arg2 per slot. */
export const META = 4;

/** Flush reasons, by code (slot argument of SLOT_END_POLL and in replies). */
export const REASONS = ["poll_end", "poll_timeout", "rows_cap", "size_cap", "shutdown"] as const;
/** A flush reason. */
export type Reason = (typeof REASONS)[number];

/** Messages from the worker. */
export type WorkerReply =
  | { t: "ready" }
  | {
    t: "envelope";
    /** Marshalled bytes, when the destination lives on this thread. */
    bytes?: Uint8Array;
    /** Bare envelope bytes, when live streams asked for them. */
    envelope?: Uint8Array;
    rows: number;
    /** Size of the marshalled flush. */
    size: number;
    reason: Reason;
  }
  | {
    t: "polled";
    id: number;
    /** Send errors of a destination living in the worker. */
    sendErrors: string[];
    /** Records the worker could not decode (broken framing). */
    decodeErrors: string[];
    /** What the worker's counters (its destination's) grew by during the poll. */
    counters: [string, number][];
  }
  | { t: "fatal"; message: string };

/** Settings of the worker. */
export interface PipelineInit extends PipelineSettings {
  t: "init";
  data: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  slots: number;
  slotSize: number;
  mask: number;
  rows: RowSettings;
}

/** Options of {@link Pipeline}. */
export interface PipelineOptions extends PipelineSettings {
  slots: number;
  slotSize: number;
  mask: number;
  /** `--changesOnly`, `--socketOwners`: the worker filters and fills the rows. */
  rows: RowSettings;
  /** Each envelope the worker flushed (marshalled bytes and/or the bare envelope). */
  onEnvelope: (m: Extract<WorkerReply, { t: "envelope" }>) => void;
  /** What the worker's counters grew by, once per poll. */
  onCounters?: (deltas: [string, number][]) => void;
}

/** The receiving side of the ring, and the worker. */
export class Pipeline implements DatagramPipe, DumpSink {
  private readonly ctl: Int32Array;
  /** The slots' metadata words as unsigned (sequence numbers and port ids reach 2^32). */
  private readonly meta: Uint32Array;
  private readonly u8: Uint8Array[] = [];
  private readonly dv: DataView[] = [];
  private readonly views: { u8: Uint8Array; dv: DataView }[] = [];
  private readonly worker: Worker;
  private head = 0;
  private pollId = 0;
  private readonly waiting = new Map<number, (r: Extract<WorkerReply, { t: "polled" }>) => void>();
  private failure: Error | undefined;
  private readonly started: Promise<void>;
  private readonly failed: (err: Error) => void;

  /** @param o ring size and what the worker needs */
  constructor(private readonly o: PipelineOptions) {
    const data = new SharedArrayBuffer(o.slots * o.slotSize);
    const ctl = new SharedArrayBuffer((META + 4 * o.slots) * 4);
    this.ctl = new Int32Array(ctl);
    this.meta = new Uint32Array(ctl);
    for (let i = 0; i < o.slots; i++) {
      const u8 = new Uint8Array(data, i * o.slotSize, o.slotSize);
      const dv = new DataView(data, i * o.slotSize, o.slotSize);
      this.u8.push(u8);
      this.dv.push(dv);
      this.views.push({ u8, dv });
    }
    this.worker = new Worker(new URL("./pipeline_worker.ts", import.meta.url), { type: "module" });
    const started = Promise.withResolvers<void>();
    const ready = started.resolve;
    this.failed = started.reject;
    this.started = started.promise;
    this.started.catch(() => {/* reported by ready() and the polls */});
    this.worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const m = e.data;
      if (m.t === "ready") ready();
      else if (m.t === "envelope") o.onEnvelope(m);
      else if (m.t === "polled") {
        o.onCounters?.(m.counters);
        this.waiting.get(m.id)?.(m);
        this.waiting.delete(m.id);
      } else this.fail(new Error(`Pipeline worker failed: ${m.message}`));
    };
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.fail(new Error(`Pipeline worker failed: ${e.message}`));
    };
    const init: PipelineInit = {
      t: "init",
      data,
      ctl,
      slots: o.slots,
      slotSize: o.slotSize,
      mask: o.mask,
      rows: o.rows,
      marshal: o.marshal,
      columns: o.columns,
      ...(o.workerDest ? { workerDest: o.workerDest } : {}),
    };
    this.worker.postMessage(init);
  }

  /** Resolves once the worker runs (its imports loaded). */
  ready(): Promise<void> {
    return this.started;
  }

  /** Why the pipeline stopped working, if it did. */
  get error(): Error | undefined {
    return this.failure;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.failed(err);
  }

  /** Asks for every envelope (live streams) or stops asking. */
  wantEnvelopes(on: boolean): void {
    Atomics.store(this.ctl, WANT_ENVELOPES, on ? 1 : 0);
  }

  private slot(): number {
    let waited = 0;
    for (;;) {
      if (this.failure) throw this.failure;
      const tail = Atomics.load(this.ctl, TAIL);
      if (this.head - tail < this.o.slots) return this.head % this.o.slots;
      // The worker reports failures by message, which this blocked thread cannot read: a worker
      // that stops consuming for 10 s is taken as dead.
      if (Atomics.wait(this.ctl, TAIL, tail, 1000) === "timed-out" && ++waited >= 10) {
        this.fail(new Error("Pipeline worker stopped consuming for 10 s"));
      }
    }
  }

  private emit(kind: number, len: number, a1: number, a2: number): void {
    const m = META + (this.head % this.o.slots) * 4;
    this.meta[m] = kind;
    this.meta[m + 1] = len;
    this.meta[m + 2] = a1;
    this.meta[m + 3] = a2;
    this.head++;
    Atomics.store(this.ctl, HEAD, this.head);
    Atomics.notify(this.ctl, HEAD);
  }

  // DatagramPipe
  /** @internal */
  acquire(): { u8: Uint8Array; dv: DataView } {
    return this.views[this.slot()];
  }
  /** @internal */
  publish(length: number, expectSeq: number, expectPid: number): void {
    this.emit(SLOT_DATA, length, expectSeq, expectPid);
  }

  // DumpSink
  /** @internal */
  onSocket(): void {
    throw new Error("Pipelined dumps decode in the worker, not here");
  }
  /** @internal */
  checkpoint(): void {
    this.slot();
    this.emit(SLOT_CHECKPOINT, 0, 0, 0);
  }
  /** @internal */
  rollback(): void {
    this.slot();
    this.emit(SLOT_ROLLBACK, 0, 0, 0);
  }

  /** The metadata every following record carries: the dump of namespace `key` starts. */
  stamp(s: StampBytes, key: number): void {
    const i = this.slot();
    if (s.head.length + s.tail.length > this.o.slotSize) {
      throw new RangeError(`Stamp too large for a pipeline slot: ${s.head.length + s.tail.length}`);
    }
    this.u8[i].set(s.head, 0);
    this.u8[i].set(s.tail, s.head.length);
    this.emit(SLOT_STAMP, s.head.length + s.tail.length, s.head.length, key);
  }

  /** The dump of namespace `key` ended (`ok`: it succeeded: close records are due). */
  endNamespace(key: number, ok: boolean): void {
    this.slot();
    this.emit(SLOT_NS_END, 0, ok ? 1 : 0, key);
  }

  /** Namespace `key` vanished: its state goes. */
  dropNamespace(key: number): void {
    this.slot();
    this.emit(SLOT_NS_DROP, 0, 0, key);
  }

  /**
   * Envelope limits and sampling for the coming poll, which is a snapshot (every socket written
   * under `--changesOnly`) or not.
   */
  configure(maxRows: number, maxBytes: number, modulus: number, snapshot: boolean): void {
    const i = this.slot();
    this.dv[i].setInt32(0, modulus, true);
    this.dv[i].setInt32(4, snapshot ? 1 : 0, true);
    this.emit(SLOT_CONFIG, 8, maxRows, maxBytes);
  }

  /** Ends the poll: the worker flushes what is left; resolves with its account of the poll. */
  async endPoll(reason: Reason): Promise<Extract<WorkerReply, { t: "polled" }>> {
    const id = ++this.pollId;
    const done = new Promise<Extract<WorkerReply, { t: "polled" }>>((resolve) =>
      this.waiting.set(id, resolve)
    );
    this.slot();
    this.emit(SLOT_END_POLL, 0, REASONS.indexOf(reason), id);
    const failed = new Promise<never>((_, reject) => {
      const check = setInterval(() => {
        if (this.failure) {
          clearInterval(check);
          reject(this.failure);
        }
      }, 50);
      done.finally(() => clearInterval(check));
    });
    return await Promise.race([done, failed]);
  }

  /**
   * Stops the worker: it leaves its loop (terminate() alone does not wake a thread blocked in
   * Atomics.wait, and would keep the process alive) and is terminated.
   */
  close(): void {
    Atomics.store(this.ctl, STOP, 1);
    Atomics.notify(this.ctl, HEAD);
    this.worker.terminate();
  }
}
