/**
 * The poll loop: at a jittered cadence, dump every namespace into envelopes that flush at the
 * row or byte cap (a full envelope starts a new one: no row is dropped), at the end of each poll
 * and at shutdown. A poll that overruns makes the next ticks be skipped, not queued. The poller
 * reads only its {@link PollSettings}, which are replaced whole ({@link Poller.setCadence}),
 * never changed in place.
 *
 * @module
 */
import process from "node:process";
import type { NetlinkSocket } from "../../ffi/netlink_socket.ts";
import { UringNetlinkReader } from "../../ffi/uring_netlink.ts";
import { Pipeline, type WorkerReply } from "./pipeline.ts";
import { NetlinkCounts } from "./netlink_counts.ts";
import { Dumper, type DumpSink, type NetlinkTransport } from "../netlink/dump.ts";
import { NetlinkError } from "../netlink/errors.ts";
import type { SocketRun } from "../netlink/parse.ts";
import type { SocketView } from "../netlink/socket_view.ts";
import { type EnvelopeMark, EnvelopeWriter, RecordEncoder } from "../record/encoder.ts";
import { Stamp, type StampValue } from "../record/stamp.ts";
import type { Backlog, Delivery } from "../dest/queue.ts";
import type { Marshaller } from "../format/marshal.ts";
import type { NamespaceRegistry, NsState } from "../netns/registry.ts";
import { errorMessage, isFatal, releaseAfter, type Suppressing } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import { collectYoung } from "../util/idle_gc.ts";
import type { Lease } from "../util/lease.ts";
import type { RowFilter } from "./rows.ts";
import { type FlushReason, RowBatcher } from "./batch.ts";
import { freezeSettings, type PollSettings } from "./settings.ts";

/**
 * Room for one more row past the flush threshold, kept free in front of each envelope when
 * flushes are lent (a larger row moves the envelope to where it fits).
 */
const LEND_ROW_ROOM = 64 * 1024;

/** What one poll did. */
export interface PollSummary {
  loop: number;
  namespaces: number;
  sockets: number;
  flushes: number;
  bytes: number;
  ms: number;
  timedOut: boolean;
  /** System CPU of the process while it dumped (the kernel's walks and copies), ms. */
  kernelMs: number;
  /** Each namespace's dump, wall ms. */
  dumpMs: number[];
  /** Namespaces whose dump failed. */
  failed: number;
}

/**
 * `; backlog …` for the summary line while delivery is behind: more waits than this poll's own
 * flushes (which were just handed over), or something is on disk.
 */
function backlogText(b: Backlog | undefined, flushes: number): string {
  if (!b || (b.envelopes <= flushes && b.spooled.envelopes === 0)) return "";
  const disk = b.spooled.envelopes
    ? `, ${b.spooled.envelopes} envelopes (${b.spooled.rows} rows) spooled`
    : "";
  return `; backlog ${b.envelopes} envelopes (${b.rows} rows, ${b.bytes} bytes, oldest ${
    (b.oldestMs / 1000).toFixed(1)
  } s)${disk}`;
}

export type { FlushReason } from "./batch.ts";

/** The key of a namespace in the row filter and the pipeline's messages (its inode, 32 bits). */
function nsKey(st: NsState): number {
  return Number(st.info.inode & 0xffffffffn);
}

/** Wall-clock time in ns (microsecond resolution). */
export function nowNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

/** Dependencies of a {@link Poller}. */
export interface PollerDeps {
  /** What to poll, how often, how. */
  settings: PollSettings;
  registry: NamespaceRegistry;
  /** Where flushes go: in place, or the delivery queue of a network destination. */
  delivery: Delivery;
  marshaller: Marshaller;
  log: Logger;
  counters: Counters;
  /** Sees every netlink datagram sent and received (captures). */
  onDatagram?: (bytes: Uint8Array, outgoing: boolean) => void;
  /** Sees every envelope (bare Envelope bytes, valid during the call) as it is flushed. */
  onEnvelope?: (envelope: Uint8Array, rows: number) => void;
  /** Whether onEnvelope has anyone to give envelopes to (the pipeline only sends them then). */
  wantEnvelopes?: () => boolean;
  /** Sees every completed poll (metrics). */
  onPoll?: (summary: PollSummary) => void;
  /**
   * More stamp fields of a namespace (enrichment: container, uplinks), asked once per namespace
   * per poll; they may replace `netns`. Must answer from what is ready (no I/O).
   */
  stampFields?: (st: NsState) => Readonly<Record<string, StampValue | undefined>>;
}

/** Collects, batches and flushes. */
export class Poller implements DumpSink, Disposable {
  /** Completed polls. */
  loops = 0;
  /** Ticks skipped because a poll overran. */
  skippedTicks = 0;
  /** True while the loop runs (readiness). */
  running = false;
  private settingsNow: PollSettings;
  private readonly env: EnvelopeWriter;
  private readonly dumper: Dumper;
  private mark: EnvelopeMark;
  private flushesAtMark = 0;
  private flushCount = 0;
  private pollBytes = 0;
  private pollFlushes = 0;
  // Per-poll copies of settings (the batcher, the pipeline and the flush loan get them from here).
  private modulus = 1;
  private maxRows = 10_000;
  private maxBytes = 786_432;
  private wake: (() => void) | undefined;
  private uringReader: UringNetlinkReader | undefined;
  private pipe: Pipeline | undefined;
  private pipedDumper: Dumper | undefined;
  private uringTransports = new WeakMap<NetlinkSocket, NetlinkTransport>();
  private triggered = 0;
  /** The original's Netlinker/Deserialize counters of each dumper (one per receiving path). */
  private readonly counts: NetlinkCounts;
  private readonly pipedCounts: NetlinkCounts;
  /** `--changesOnly`, `--socketOwners` (undefined without either): the batcher's. */
  private readonly rows: RowFilter | undefined;
  /** Sockets into rows, and the flushes they call for. */
  private readonly batch: RowBatcher;
  /** Namespaces whose dumps the row filter (or the pipeline's) has seen. */
  private readonly nsKeys = new Set<number>();

  /** @param deps what the poller works with */
  constructor(private readonly deps: PollerDeps) {
    const s = deps.settings;
    this.settingsNow = s;
    // Flushes are lent to a delivery that takes loans: the encoder's memory must be shared.
    this.env = new EnvelopeWriter(1 << 20, new RecordEncoder(deps.delivery.lends > 0));
    this.mark = this.env.mark();
    const r = s.rows;
    this.counts = new NetlinkCounts(deps.counters);
    this.batch = new RowBatcher(this.env, r, this.counts, (reason) => this.flush(reason));
    this.rows = this.batch.rows;
    const dumping = {
      ...s.dump,
      ...(deps.onDatagram ? { onDatagram: deps.onDatagram } : {}),
    };
    // The dumper receives into the encoder's memory, which reads each socket there in place.
    this.dumper = new Dumper({ ...dumping, source: this.env.source(s.dump.bufferSize) });
    this.pipedCounts = new NetlinkCounts(deps.counters);
    if (s.pipeline) {
      this.pipe = new Pipeline({
        slots: 16,
        slotSize: s.dump.bufferSize,
        mask: s.dump.mask,
        rows: s.rows,
        ...s.pipeline,
        onEnvelope: (m) => this.fromWorker(m),
        onCounters: (deltas) => deps.counters.addAll(deltas),
      });
      this.pipedDumper = new Dumper({ ...dumping, pipe: this.pipe });
    }
    this.uringReader = this.newUringReader();
  }

  /** A ring for `--ioUring`, or undefined (warned, counted) where the kernel refuses one. */
  private newUringReader(): UringNetlinkReader | undefined {
    const s = this.settingsNow;
    if (!s.uring) return undefined;
    try {
      return new UringNetlinkReader(
        s.uring.recvBatch,
        s.dump.bufferSize,
        s.uring.timeoutMs,
        s.uring.cqeBatch,
      );
    } catch (err) {
      this.deps.counters.inc("NetlinkerIoUring", "setup", "error");
      this.deps.log.warn(`io_uring unavailable: using recvmsg: ${errorMessage(err)}`);
      return undefined;
    }
  }

  /** The settings in force. */
  get settings(): PollSettings {
    return this.settingsNow;
  }

  /**
   * A new cadence: applied to the next sleep (a poll running now finishes as it started), and
   * the next poll starts now.
   */
  setCadence(frequencyMs: number, timeoutMs: number): void {
    this.settingsNow = freezeSettings({ ...this.settingsNow, frequencyMs, timeoutMs });
    this.trigger();
  }

  /** The io_uring reader when `ioUring` is on and the kernel allows it. */
  get uring(): UringNetlinkReader | undefined {
    return this.uringReader;
  }

  private transport(sock: NetlinkSocket): NetlinkTransport {
    const r = this.uringReader;
    if (!r) return sock;
    let t = this.uringTransports.get(sock);
    if (!t) this.uringTransports.set(sock, t = r.transport(sock));
    return t;
  }

  /** Releases the io_uring ring and the pipeline's worker, if any. */
  [Symbol.dispose](): void {
    try {
      this.uringReader?.close();
    } finally {
      this.uringReader = undefined;
      this.pipe?.close();
      this.pipe = undefined;
    }
  }

  /**
   * What `--changesOnly` tracks in this thread: namespaces and sockets (undefined without it; the
   * pipeline's worker keeps its own).
   */
  get changeState(): { namespaces: number; sockets: number } | undefined {
    return this.settingsNow.rows.changesOnly ? this.rows?.tracked : undefined;
  }

  /** The pipeline, when `pipeline` is on and its worker runs. */
  get pipeline(): Pipeline | undefined {
    return this.pipe;
  }

  /** The dumper's counters (parse stats, DUMP_INTR retries). */
  get dumpStats(): Dumper {
    return this.dumper;
  }

  // DumpSink: rows through the batcher (the pipeline's worker has its own).
  /** @internal */
  onSocket(view: SocketView): void {
    this.batch.onSocket(view);
  }
  /** @internal */
  onSockets(...run: Parameters<SocketRun>): number {
    return this.batch.onSockets(...run);
  }
  /** @internal */
  checkpoint(): void {
    this.mark = this.env.mark();
    this.flushesAtMark = this.flushCount;
  }
  /** @internal */
  rollback(): void {
    this.rows?.rollback();
    if (this.flushCount === this.flushesAtMark) {
      this.env.rollback(this.mark);
    } else {
      // Rows of the interrupted dump already left in a flush will arrive twice.
      this.deps.counters.inc("Poller", "dumpIntrAfterFlush", "error");
      this.env.reset();
    }
  }

  /**
   * Marshals the current envelope (if not empty) and hands it over: a destination that writes in
   * place gets the bytes in place (nothing copied, nothing held); the delivery queue holds them
   * on loan where the writer can lend them (they stay where they were written until the queue
   * is done with them: the next envelope is written elsewhere), else it keeps a copy.
   */
  flush(reason: FlushReason): void {
    const env = this.env;
    if (env.rows === 0) return;
    this.deps.onEnvelope?.(env.envelope(), env.rows);
    const bytes = this.deps.marshaller.marshal(env);
    const most = this.deps.delivery.lends;
    const lease = most > 0 ? env.lend(bytes, this.maxBytes + LEND_ROW_ROOM, most) : undefined;
    this.send(bytes, env.rows, reason, false, lease);
    env.reset();
  }

  /**
   * Counts one flush and delivers it; `owned`: the bytes are given away (else lent with
   * `lease`, else borrowed).
   */
  private send(
    bytes: Uint8Array,
    rows: number,
    reason: FlushReason,
    owned: boolean,
    lease?: Lease,
  ): void {
    const c = this.deps.counters;
    this.flushCount++;
    this.pollFlushes++;
    this.pollBytes += bytes.length;
    c.inc("Poller", "envelopeFlush", reason);
    c.inc("Poller", "envelopeRows", "count", rows);
    this.deps.delivery.deliver(bytes, rows, owned, lease);
  }

  /** The worker failed: what it held of this poll is lost; later polls decode in this thread. */
  private dropPipeline(err: Error): void {
    if (!this.pipe) return;
    this.deps.counters.inc("Poller", "pipeline", "error");
    this.deps.log.error(`Decoding in the main thread from now on: ${err.message}`);
    this.pipe.close();
    this.pipe = undefined;
  }

  /** A flush made by the pipeline's worker. */
  private fromWorker(m: Extract<WorkerReply, { t: "envelope" }>): void {
    if (m.envelope) this.deps.onEnvelope?.(m.envelope, m.rows);
    if (m.bytes) {
      this.send(m.bytes, m.rows, m.reason, true); // transferred from the worker
      return;
    }
    // Written by the worker itself: only counted here.
    this.flushCount++;
    this.pollFlushes++;
    this.pollBytes += m.size;
    const c = this.deps.counters;
    c.inc("Poller", "envelopeFlush", m.reason);
    c.inc("Poller", "envelopeRows", "count", m.rows);
  }

  /**
   * Meets a failed dump: the namespace's socket is replaced when it may still hold the rest of
   * the dump (anything but a kernel answer that ended it), so the next poll starts clean. Fatal
   * errors are thrown.
   */
  private dumpFailed(st: NsState, err: unknown): void {
    if (isFatal(err)) throw err;
    const c = this.deps.counters;
    const kernelEnded = err instanceof NetlinkError && err.code !== "EBUSY";
    const kind = err instanceof NetlinkError
      ? err.code
      : (err as { code?: unknown }).code ?? (err as Error).name;
    c.inc("Poller", "dump", "error");
    c.inc("Poller", "dumpError", String(kind));
    const also = ((err as Suppressing).suppressed ?? []).map((e) => `; then: ${errorMessage(e)}`);
    this.deps.log.error(
      `Dump of namespace ${st.info.name} failed: ${errorMessage(err)}${also.join("")}`,
    );
    if (!kernelEnded) this.deps.registry.reopen(st);
    if (this.uringReader?.isBroken) {
      // Its cancel failed: it may hold stale completions. A new ring (or recvmsg) from now on.
      c.inc("NetlinkerIoUring", "broken", "error");
      releaseAfter(err, () => this.uringReader?.close());
      this.uringTransports = new WeakMap();
      this.uringReader = this.newUringReader();
    }
  }

  /** One poll of every namespace (synchronous dumps), then the end-of-poll flush. */
  async pollOnce(): Promise<PollSummary> {
    const s = this.settingsNow;
    const c = this.deps.counters;
    const t0 = performance.now();
    this.deps.delivery.beginPoll();
    this.pollBytes = 0;
    this.pollFlushes = 0;
    this.modulus = s.modulus;
    this.maxRows = s.envelopeRows;
    this.maxBytes = s.envelopeBytes;
    this.batch.beginPoll(this.maxRows, this.maxBytes, this.modulus);
    let sockets = 0;
    let namespaces = 0;
    let timedOut = false;
    if (this.pipe) {
      try {
        await this.pipe.ready();
      } catch (err) {
        this.dropPipeline(err as Error); // its worker could not start: decode here
      }
    }
    const pipe = this.pipe;
    const r = s.rows;
    const snapshot = r.changesOnly && r.snapshotEvery > 0 && this.loops % r.snapshotEvery === 0;
    if (pipe) {
      pipe.wantEnvelopes(this.deps.wantEnvelopes?.() ?? false);
      pipe.configure(this.maxRows, this.maxBytes, this.modulus, snapshot);
    }
    this.rows?.beginPoll(snapshot);
    const states = [...this.deps.registry.states.values()];
    if (this.rows) {
      try {
        this.dropVanished(states, pipe);
      } catch (err) {
        this.dropPipeline(err as Error); // its worker stopped consuming
      }
    }
    const stamp = s.stamp;
    const dumpMs: number[] = [];
    let failed = 0;
    const cpu0 = process.cpuUsage();
    for (const st of states) {
      if (performance.now() - t0 > s.timeoutMs) {
        timedOut = true;
        c.inc("Poller", "PollTimeout", "count");
        c.inc("Poller", "namespacesNotPolled", "count", states.length - namespaces);
        break;
      }
      const nsStamp = new Stamp({
        daemon_version: stamp.daemonVersion,
        timestamp_ns: nowNs(),
        hostname: stamp.hostname,
        location: stamp.location,
        netns: st.info.name,
        netns_inode: st.info.inode,
        label: stamp.label,
        tag: stamp.tag,
        socket_fd: st.socket.fd,
        ...(st.nsid === undefined ? {} : { nsid: st.nsid }),
        ...this.deps.stampFields?.(st),
      });
      this.batch.stamp = nsStamp;
      const d0 = performance.now();
      const key = nsKey(st);
      if (this.rows) this.nsKeys.add(key);
      const piped = pipe !== undefined && this.pipedDumper !== undefined;
      let ok = false;
      try {
        if (pipe && this.pipedDumper) {
          pipe.stamp(nsStamp, key);
          sockets += this.pipedDumper.dump(this.transport(st.socket), pipe);
        } else {
          this.rows?.beginNamespace(key);
          sockets += this.dumper.dump(this.transport(st.socket), this);
        }
        ok = true;
      } catch (err) {
        if (pipe?.error) this.dropPipeline(pipe.error);
        failed++;
        this.dumpFailed(st, err);
      }
      if (!piped) this.rows?.endNamespace(ok);
      else if (pipe && this.pipe === pipe) {
        try {
          pipe.endNamespace(key, ok);
        } catch (err) {
          this.dropPipeline(err as Error); // its worker stopped consuming
        }
      }
      dumpMs.push(performance.now() - d0);
      namespaces++;
    }
    const reason = timedOut ? "poll_timeout" : "poll_end";
    if (pipe && this.pipe === pipe) {
      try {
        const r = await pipe.endPoll(reason);
        for (const e of r.sendErrors) {
          c.inc("Poller", "envelopeFlush", "error");
          this.deps.log.error(`${this.deps.delivery.scheme}: ${e}`);
        }
        for (const e of r.decodeErrors) {
          c.inc("Poller", "decode", "error");
          this.deps.log.error(`Pipeline: ${e}`);
        }
      } catch (err) {
        this.dropPipeline(err as Error);
      }
    } else {
      this.flush(reason);
    }
    const uring = this.uringReader !== undefined;
    this.counts.received(this.dumper, uring);
    this.counts.decoded(this.dumper.stats);
    if (this.pipedDumper) this.pipedCounts.received(this.pipedDumper, uring);
    this.rows?.account(c);
    this.loops++;
    c.inc("Poller", "pollingLoops");
    const summary: PollSummary = {
      loop: this.loops,
      namespaces,
      sockets,
      flushes: this.pollFlushes,
      bytes: this.pollBytes,
      ms: performance.now() - t0,
      timedOut,
      kernelMs: process.cpuUsage(cpu0).system / 1000,
      dumpMs,
      failed,
    };
    this.deps.onPoll?.(summary);
    this.deps.log.info(
      `poll ${summary.loop}: ${namespaces} namespaces, ${sockets} sockets, ${summary.bytes} bytes in ${summary.flushes} flushes, ${
        summary.ms.toFixed(1)
      } ms${timedOut ? " (timed out)" : ""}${
        backlogText(this.deps.delivery.backlog(), summary.flushes)
      }`,
    );
    // With the block policy, a full delivery queue makes the next poll wait.
    await this.deps.delivery.room();
    return summary;
  }

  /** Forgets the row state of namespaces that are gone (here and in the pipeline's worker). */
  private dropVanished(states: NsState[], pipe: Pipeline | undefined): void {
    const live = new Set(states.map(nsKey));
    for (const key of this.nsKeys) {
      if (live.has(key)) continue;
      this.rows?.drop(key);
      pipe?.dropNamespace(key);
      this.nsKeys.delete(key);
    }
  }

  /** Requests an extra poll as soon as possible (coalesced with a pending one). */
  trigger(): void {
    this.triggered++;
    this.wake?.();
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (ms <= 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      signal.addEventListener("abort", done);
      this.wake = done;
    });
  }

  /**
   * Polls until `signal` aborts or maxLoops polls are done, then flushes what is left (reason
   * shutdown) and waits for the destination. Throws what is fatal.
   */
  async run(signal: AbortSignal, beforePoll: () => void = () => {}): Promise<void> {
    const c = this.deps.counters;
    this.running = true;
    try {
      const jitter = () => this.settingsNow.frequencyMs * this.settingsNow.jitterPct / 100;
      await this.sleep(Math.random() * jitter(), signal);
      let next = performance.now();
      while (!signal.aborted) {
        this.triggered = 0;
        if (this.settingsNow.reconcileBeforePoll) beforePoll();
        collectYoung(); // the poll starts with room for what it allocates: no scavenge in it
        await this.pollOnce();
        const { maxLoops, frequencyMs } = this.settingsNow;
        if (maxLoops > 0 && this.loops >= maxLoops) break;
        const j = jitter();
        next += frequencyMs - j / 2 + Math.random() * j;
        const now = performance.now();
        if (now > next) {
          const missed = Math.floor((now - next) / frequencyMs) + 1;
          this.skippedTicks += missed;
          c.inc("Poller", "alreadyPolling", "count", missed);
          this.deps.log.info(`poll ${this.loops} overran the interval: ${missed} tick(s) skipped`);
          next += missed * frequencyMs;
        }
        if (this.triggered === 0) await this.sleep(next - performance.now(), signal);
        if (this.triggered > 0) next = performance.now();
      }
    } finally {
      this.running = false;
      this.flush("shutdown");
    }
  }
}
