/**
 * The running daemon as an object: what the entrypoint, the gRPC API and the metrics share. A new
 * configuration is applied in place (flush, rebuild, same PID) without losing records.
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { type XtcpConfig, XtcpConfigSchema } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import type { XtcpFlatRecord } from "../gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { type Destination, openDestination } from "../dest/destination.ts";
import { marshaller } from "../format/marshal.ts";
import { NamespaceRegistry } from "../netns/registry.ts";
import { Poller, type PollSummary } from "../poll/poller.ts";
import { CaptureWriter } from "./capture_writer.ts";
import { durationMs, fileLimits } from "./config.ts";
import type { Counters, Logger } from "./log.ts";
import { VERSION } from "../version.ts";
import { RecordHub } from "./record_hub.ts";

/** Shared state of a running daemon. */
export class Daemon {
  config: XtcpConfig;
  /** Live record subscribers (gRPC streams). */
  readonly hub: RecordHub;
  /** Last poll summaries listeners (metrics). */
  onPoll: ((s: PollSummary) => void) | undefined;
  private poller: Poller | undefined;
  private dest: Destination | undefined;
  private capture: CaptureWriter | undefined;
  private runStop: AbortController | undefined;
  private running: Promise<void> | undefined;
  private readonly registry: NamespaceRegistry;
  private reconcileTimer: ReturnType<typeof setInterval> | undefined;
  private readonly watchers: Deno.FsWatcher[] = [];
  private stopped = false;
  private burstTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether a TriggerPollBurst is running. */
  burstActive = false;
  /** Set while {@link Daemon.reconfigure} swaps loops: their end is not the daemon's end. */
  private reconfiguring = false;
  private readonly ended = Promise.withResolvers<void>();

  /**
   * @param config initial configuration (validated)
   * @param selfInode inode of the daemon's own namespace
   */
  constructor(
    config: XtcpConfig,
    private readonly selfInode: bigint,
    readonly log: Logger,
    readonly counters: Counters,
    private readonly hostname: string,
  ) {
    this.config = config;
    this.hub = new RecordHub(counters);
    this.registry = new NamespaceRegistry({
      selfInode,
      rcvTimeoutMs: Number(config.nlTimeoutMilliseconds),
      log,
      counters,
    });
  }

  /** Namespaces tracked now. */
  get namespaces(): number {
    return this.registry.states.size;
  }

  /** Whether the poll loop runs (readiness). */
  get ready(): boolean {
    return !this.stopped && (this.poller?.running ?? false);
  }

  /** Starts (or restarts, after {@link Daemon.reconfigure}) the poll loop. */
  async start(): Promise<void> {
    const cfg = this.config;
    this.dest = await openDestination(cfg.dest, {
      marshal: cfg.marshalTo,
      topic: cfg.topic,
      kafkaCompression: cfg.kafkaCompression,
      produceTimeoutMs: durationMs(cfg.kafkaProduceTimeout),
      ...fileLimits(cfg),
      counters: this.counters,
      log: this.log,
    });
    this.capture = cfg.writeFiles > 0
      ? new CaptureWriter(cfg.capturePath, cfg.writeFiles)
      : undefined;
    const capture = this.capture;
    this.poller = new Poller({
      config: cfg,
      registry: this.registry,
      dest: this.dest,
      marshaller: marshaller(cfg.marshalTo, cfg.csvColumns),
      log: this.log,
      counters: this.counters,
      hostname: cfg.hostname || this.hostname,
      daemonVersion: cfg.daemonVersion || VERSION,
      ...(capture ? { onDatagram: (b: Uint8Array, out: boolean) => capture.write(b, out) } : {}),
      onEnvelope: (envelope, rows) => this.hub.publish(envelope, rows),
      wantEnvelopes: () => this.hub.size > 0,
      onPoll: (s) => this.onPoll?.(s),
    });
    if (this.watchers.length === 0) this.watch();
    if (this.reconcileTimer !== undefined) clearInterval(this.reconcileTimer);
    const reconcileMs = durationMs(cfg.reconcileFrequency);
    this.reconcileTimer = reconcileMs > 0
      ? setInterval(() => this.registry.reconcile(), reconcileMs)
      : undefined;
    this.registry.reconcile();
    this.log.info(
      `started: ${this.registry.states.size} namespaces, every ${
        durationMs(cfg.pollFrequency)
      } ms to ${cfg.dest} as ${cfg.marshalTo}`,
    );
    this.runStop = new AbortController();
    const poller = this.poller;
    this.running = poller.run(this.runStop.signal, () => {
      if (this.config.reconcileBeforePoll) this.registry.reconcile();
    });
    this.running.then(
      () => {
        if (!this.reconfiguring) this.ended.resolve();
      },
      (err) => this.ended.reject(err),
    );
  }

  /**
   * Resolves when the poll loop ends by itself (maxLoops) or is stopped by {@link Daemon.shutdown};
   * a loop replaced by {@link Daemon.reconfigure} does not count.
   */
  wait(): Promise<void> {
    return this.ended.promise;
  }

  private watch(): void {
    let queued = false;
    const soon = () => {
      if (queued) return;
      queued = true;
      setTimeout(() => {
        queued = false;
        if (!this.stopped) this.registry.reconcile();
      }, 50);
    };
    for (const dir of ["/run/netns", "/run/docker/netns"]) {
      try {
        const w = Deno.watchFs(dir, { recursive: false });
        this.watchers.push(w);
        (async () => {
          for await (const _ of w) soon();
        })().catch((err) => this.log.error(`watching ${dir}: ${(err as Error).message}`));
      } catch {
        this.log.debug(`${dir} absent: namespaces there are found by the periodic reconcile`);
      }
    }
  }

  private async stopLoop(): Promise<void> {
    this.runStop?.abort();
    await this.running;
    this.poller?.close();
    await this.dest?.close();
    this.capture?.close();
  }

  /**
   * Applies a new (validated) configuration in this process: flush, rebuild, restart. If the new
   * configuration cannot start (its destination cannot be opened), the previous one is restored
   * and the error is thrown.
   */
  async reconfigure(next: XtcpConfig): Promise<void> {
    if (this.stopped) throw new Error("the daemon is stopping");
    this.counters.inc("ConfigService", "Set", "count");
    const previous = this.config;
    this.reconfiguring = true;
    try {
      await this.stopLoop();
      this.config = clone(XtcpConfigSchema, next);
      try {
        await this.start();
      } catch (err) {
        this.counters.inc("ConfigService", "Set", "error");
        this.log.error(`new config rejected, previous one restored: ${(err as Error).message}`);
        this.config = previous;
        try {
          await this.start();
        } catch (again) {
          this.ended.reject(again); // neither config runs: the daemon exits with an error
        }
        throw err;
      }
    } finally {
      this.reconfiguring = false;
    }
  }

  /** Requests one extra poll. */
  triggerPoll(): void {
    this.poller?.trigger();
  }

  /** Fires `count` polls `intervalMs` apart (the first now); false if a burst already runs. */
  burst(count: number, intervalMs: number): boolean {
    if (this.burstActive) return false;
    this.burstActive = true;
    let left = count;
    const fire = () => {
      if (this.stopped || left-- <= 0) {
        this.burstActive = false;
        return;
      }
      this.triggerPoll();
      this.counters.inc("pollBurstRunner", "poke");
      this.burstTimer = setTimeout(fire, intervalMs);
    };
    fire();
    return true;
  }

  /** Stops everything: last flush, destination closed, sockets closed. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    if (this.burstTimer !== undefined) clearTimeout(this.burstTimer);
    if (this.reconcileTimer !== undefined) clearInterval(this.reconcileTimer);
    for (const w of this.watchers) w.close();
    await this.stopLoop();
    this.hub.close();
    this.registry[Symbol.dispose]();
  }
}

export type { XtcpFlatRecord };
