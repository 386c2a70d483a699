/**
 * The running daemon as an object: it composes the registry of namespaces, the destination, the
 * poller and the live-record hub from a configuration, and is what the API controls (through
 * {@link DaemonControl}). A new configuration is applied in place (flush, rebuild, same PID)
 * without losing records; the configuration object is replaced, never changed in place.
 *
 * @module
 */
import { clone } from "@bufbuild/protobuf";
import { type XtcpConfig, XtcpConfigSchema } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import type { NetnsHome } from "../../ffi/netns.ts";
import type { DaemonControl } from "../api/control.ts";
import { deliverySettings, destOptions, pollSettings } from "../config/derive.ts";
import { type Destination, hasUploadControl, isSync } from "../dest/destination.ts";
import {
  type Backlog,
  type Delivery,
  deliveryAccount,
  DeliveryQueue,
  InPlaceDelivery,
} from "../dest/queue.ts";
import { openDestination } from "../dest/registry.ts";
import { Spool } from "../dest/spool.ts";
import { marshaller } from "../format/marshal.ts";
import { statesInWords } from "../netlink/states.ts";
import { ContainerIndex } from "../netns/containers.ts";
import { NsidResolver } from "../netns/nsid.ts";
import { NamespaceRegistry, type NsState } from "../netns/registry.ts";
import type { StampValue } from "../record/stamp.ts";
import { Uplinks } from "../netns/uplinks.ts";
import { CaptureWriter } from "../poll/capture_writer.ts";
import { Poller, type PollSummary } from "../poll/poller.ts";
import { RecordHub, type Subscriber } from "../poll/record_hub.ts";
import { durationMs, msToDuration } from "../util/duration.ts";
import { errorMessage, isFatal } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import { withTimeout } from "../util/timeout.ts";
import { VERSION } from "../version.ts";

/** What a {@link Daemon} is made of. */
export interface DaemonDeps {
  /** The initial configuration (validated). */
  config: XtcpConfig;
  /** The thread's home network namespace, opened at startup. */
  home: NetnsHome;
  /** Inode of the daemon's own namespace. */
  selfInode: bigint;
  log: Logger;
  counters: Counters;
  /** The OS hostname (records carry it unless the configuration names another). */
  hostname: string;
  /** The entrypoint's shutdown signal: when it aborts, the poll loop stops (last flush). */
  signal: AbortSignal;
}

/** Bound of each Docker API request and of each lldpcli run (ms). */
const ENRICH_TIMEOUT_MS = 5000;
/** How long the start waits for the first enrichment before the first poll (ms). */
const ENRICH_START_WAIT_MS = 2000;

/** The enrichers of a configuration (none without the flags). */
interface Enrichment {
  containers: ContainerIndex | undefined;
  uplinks: Uplinks | undefined;
}

/** One running poll loop and what it owns. */
interface Loop {
  dest: Destination;
  poller: Poller;
  delivery: Delivery;
  capture: CaptureWriter | undefined;
  stop: AbortController;
  running: Promise<void>;
}

/** Shared state of a running daemon. */
export class Daemon implements DaemonControl, AsyncDisposable {
  /** Live record subscribers (gRPC streams). */
  readonly hub: RecordHub;
  /** Sees every completed poll (metrics). */
  onPoll: ((s: PollSummary) => void) | undefined;
  /** What shutdown is doing now (the shutdown guard names it when it fires). */
  phase = "running";
  private configNow: XtcpConfig;
  private loop: Loop | undefined;
  private readonly registry: NamespaceRegistry;
  private readonly nsid: NsidResolver | undefined;
  private enrich: Enrichment = { containers: undefined, uplinks: undefined };
  private reconcileTimer: ReturnType<typeof setInterval> | undefined;
  private readonly watchers: Deno.FsWatcher[] = [];
  private stopped = false;
  private burstTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether a TriggerPollBurst is running. */
  burstActive = false;
  /** Set while {@link Daemon.reconfigure} swaps loops: their end is not the daemon's end. */
  private reconfiguring = false;
  private readonly ended = Promise.withResolvers<void>();
  /** The fatal error that ended the daemon, once one did: nothing starts or reconciles after it. */
  private fatal: unknown;

  /** @param deps configuration, namespace home, logging, shutdown signal */
  constructor(private readonly deps: DaemonDeps) {
    this.configNow = deps.config;
    this.hub = new RecordHub(deps.counters);
    this.nsid = deps.config.populateNsid ? new NsidResolver() : undefined;
    this.registry = new NamespaceRegistry({
      home: deps.home,
      selfInode: deps.selfInode,
      rcvTimeoutMs: Number(deps.config.nlTimeoutMilliseconds),
      log: deps.log,
      counters: deps.counters,
      ...(this.nsid ? { nsid: this.nsid } : {}),
    });
    this.ended.promise.catch(() => {/* reported by wait() */});
    deps.signal.addEventListener("abort", () => this.loop?.stop.abort(), { once: true });
  }

  /** The configuration in force (replaced, never changed in place). */
  get config(): XtcpConfig {
    return this.configNow;
  }

  /** The daemon's counters. */
  get counters(): Counters {
    return this.deps.counters;
  }

  /** The daemon's logger. */
  get log(): Logger {
    return this.deps.log;
  }

  /** Namespaces tracked now. */
  get namespaces(): number {
    return this.registry.states.size;
  }

  /** Whether the poll loop runs and no shutdown has begun (readiness). */
  get ready(): boolean {
    return !this.stopped && !this.deps.signal.aborted && (this.loop?.poller.running ?? false);
  }

  /** A fatal error: the daemon must stop (wait() rejects with it). */
  private fail(err: unknown): void {
    this.fatal ??= err;
    this.deps.log.error(errorMessage(err));
    this.ended.reject(err);
    this.loop?.stop.abort();
  }

  /** Reconciles namespaces and tells the container index what is there now; throws what is fatal. */
  private reconcileNamespaces(): void {
    this.registry.reconcile();
    this.enrich.containers?.update([...this.registry.states.values()].map((st) => st.info));
  }

  /** Reconciles namespaces; a fatal error stops the daemon, others are the registry's to log. */
  private reconcile(): void {
    if (this.stopped || this.fatal !== undefined) return;
    try {
      this.reconcileNamespaces();
    } catch (err) {
      if (isFatal(err)) this.fail(err);
      else this.deps.log.error(`Reconcile failed: ${errorMessage(err)}`);
    }
  }

  /** Starts (or restarts, after {@link Daemon.reconfigure}) the poll loop. */
  async start(): Promise<void> {
    const cfg = this.configNow;
    const { counters, log } = this.deps;
    const dest = await openDestination(
      cfg.dest,
      destOptions(cfg, { counters, log, signal: this.deps.signal, hostname: this.deps.hostname }),
    );
    const framing = marshaller(cfg.marshalTo, cfg.csvColumns).framing;
    const delivery = this.openDelivery(cfg, dest, framing);
    this.enrich = this.openEnrichment(cfg);
    const capture = cfg.writeFiles > 0
      ? new CaptureWriter(cfg.capturePath, cfg.writeFiles)
      : undefined;
    const poller = new Poller({
      settings: pollSettings(cfg, { hostname: this.deps.hostname, version: VERSION }),
      registry: this.registry,
      delivery,
      marshaller: marshaller(cfg.marshalTo, cfg.csvColumns),
      log,
      counters,
      ...(capture ? { onDatagram: (b: Uint8Array, out: boolean) => capture.write(b, out) } : {}),
      onEnvelope: (envelope, rows) => this.hub.publish(envelope, rows),
      wantEnvelopes: () => this.hub.size > 0,
      onPoll: (s) => this.onPoll?.(s),
      ...(this.enrich.containers || this.enrich.uplinks
        ? { stampFields: (st: NsState) => this.stampFields(st) }
        : {}),
    });
    if (this.watchers.length === 0) this.watch();
    this.reconcile();
    // The thread may be stuck in another namespace: wait() rejects, and no loop or timer starts.
    if (this.fatal !== undefined) return;
    await this.firstEnrichment();
    this.warnSharedTables();
    if (this.reconcileTimer !== undefined) clearInterval(this.reconcileTimer);
    const reconcileMs = durationMs(cfg.reconcileFrequency);
    this.reconcileTimer = reconcileMs > 0
      ? setInterval(() => this.reconcile(), reconcileMs)
      : undefined;
    log.info(
      `started: ${this.registry.states.size} namespaces, every ${
        durationMs(cfg.pollFrequency)
      } ms to ${cfg.dest} as ${cfg.marshalTo}`,
    );
    const d = poller.settings.dump;
    log.info(
      `request: ${
        d.oneWalk
          ? "one walk for IPv4 and IPv6 (TCPDIAG_GETSOCK, AF_UNSPEC) where the kernel answers it, else one inet_diag_req_v2 per family"
          : "one inet_diag_req_v2 per family (two walks)"
      }; TCP states: ${statesInWords(d.states)}; filter: ${
        d.bytecode ? `${d.filter} (${d.bytecode.length} bytes of INET_DIAG_REQ_BYTECODE)` : "none"
      }; idiag_ext 0x${d.ext.toString(16)}`,
    );
    const stop = new AbortController();
    if (this.deps.signal.aborted) stop.abort();
    // Before each poll: a fatal reconcile error ends the loop at once (and the daemon with it).
    const running = poller.run(stop.signal, () => this.reconcileNamespaces());
    this.loop = { dest, poller, delivery, capture, stop, running };
    running.then(
      () => {
        if (!this.reconfiguring) this.ended.resolve();
      },
      (err) => this.fail(err),
    );
  }

  /** The enrichers the configuration asks for (`-enrichContainer`, `-enrichNic`, …). */
  private openEnrichment(cfg: XtcpConfig): Enrichment {
    const { counters, log } = this.deps;
    const refreshMs = durationMs(cfg.enrichRefresh) || 30_000;
    const containers = cfg.enrichContainerEnable || cfg.resolveContainerId
      ? new ContainerIndex({
        ...(cfg.enrichContainerEnable
          ? {
            docker: {
              socket: cfg.dockerSocketPath,
              timeoutMs: ENRICH_TIMEOUT_MS,
              relistMs: refreshMs,
            },
          }
          : {}),
        cgroup: cfg.resolveContainerId,
        counters,
        log,
      })
      : undefined;
    const uplinks = (cfg.enrichNicEnable || cfg.enrichLldpEnable) && cfg.uplinkCount > 0
      ? new Uplinks({
        interfaces: cfg.uplinkInterfaces,
        count: cfg.uplinkCount,
        nic: cfg.enrichNicEnable,
        ...(cfg.enrichLldpEnable
          ? { lldp: { socket: cfg.lldpdSocketPath, timeoutMs: ENRICH_TIMEOUT_MS } }
          : {}),
        refreshMs,
        counters,
        log,
      })
      : undefined;
    return { containers, uplinks };
  }

  /**
   * Starts the uplinks' timer and waits for the first answers of lldpd and the Docker API, at
   * most {@link ENRICH_START_WAIT_MS}: a one-shot run (`-maxLoops 1`) gets the columns when
   * they answer at once; a slow one only delays the columns, never the polls after.
   */
  private async firstEnrichment(): Promise<void> {
    const { containers, uplinks } = this.enrich;
    if (!containers && !uplinks) return;
    try {
      await withTimeout(
        Promise.all([uplinks?.start(), containers?.settled()]),
        ENRICH_START_WAIT_MS,
        "the first enrichment",
      );
    } catch (err) {
      this.deps.counters.inc("enrich", "startWait", "timeout");
      this.deps.log.debug(`${errorMessage(err)}: polling without it meanwhile`);
    }
  }

  /** The enrichment stamp fields of a namespace (ready values only). */
  private stampFields(st: NsState): Record<string, StampValue | undefined> {
    const { containers, uplinks } = this.enrich;
    return { ...uplinks?.fields, ...containers?.fields(st.info) };
  }

  private closeEnrichment(): void {
    const { containers, uplinks } = this.enrich;
    this.enrich = { containers: undefined, uplinks: undefined };
    containers?.[Symbol.dispose]();
    uplinks?.[Symbol.dispose]();
  }

  private sharedTablesWarned = false;

  /**
   * Says once when namespaces share the host's TCP hash table: each of their dumps then walks
   * every namespace's sockets, so a poll costs namespaces × sockets of the node.
   */
  private warnSharedTables(): void {
    const { shared, total } = this.registry.sharedTables();
    if (this.sharedTablesWarned || shared < 2) return;
    this.sharedTablesWarned = true;
    this.deps.log.info(
      `${shared} of ${total} namespaces share the host's TCP hash table: each of their dumps walks ` +
        `the sockets of every namespace. Namespaces created after ` +
        `"sysctl -w net.ipv4.tcp_child_ehash_entries=1024" (Linux 5.19+) get a table of their own ` +
        `(see README, Performance)`,
    );
  }

  /** Namespaces that share the host's TCP hash table. */
  get sharedTables(): number {
    return this.registry.sharedTables().shared;
  }

  /** In place for destinations that write in place, else the delivery queue (and its spool). */
  private openDelivery(cfg: XtcpConfig, dest: Destination, framing: "message" | "lines"): Delivery {
    const { counters, log } = this.deps;
    if (isSync(dest)) return new InPlaceDelivery(dest, framing, counters, log);
    const d = deliverySettings(cfg);
    const spool = d.spoolDir
      ? Spool.open(d.spoolDir, { maxBytes: d.spoolMaxBytes, counters, log })
      : undefined;
    return new DeliveryQueue(dest, {
      maxBytes: d.maxBytes,
      full: d.full,
      retryInitialMs: d.retryInitialMs,
      retryMaxMs: d.retryMaxMs,
      framing,
      ...(spool ? { spool } : {}),
      counters,
      log,
    });
  }

  /** Where flushes go now and what waits to be delivered (no backlog when written in place). */
  get delivery(): { scheme: string; backlog: Backlog | undefined } | undefined {
    const d = this.loop?.delivery;
    return d ? { scheme: d.scheme, backlog: d.backlog() } : undefined;
  }

  /**
   * Resolves when the poll loop ends by itself (maxLoops) or after the shutdown signal; rejects
   * with a fatal error. A loop replaced by {@link Daemon.reconfigure} does not count.
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
        this.reconcile();
      }, 50);
    };
    for (const dir of ["/run/netns", "/run/docker/netns"]) {
      try {
        const w = Deno.watchFs(dir, { recursive: false });
        this.watchers.push(w);
        (async () => {
          for await (const _ of w) soon();
        })().catch((err) => this.deps.log.error(`Watching ${dir}: ${errorMessage(err)}`));
      } catch {
        this.deps.log.debug(`${dir} absent: namespaces there are found by the periodic reconcile`);
      }
    }
  }

  /** Stops the poll loop (last flush) and releases what it owned. */
  private async stopLoop(): Promise<void> {
    const loop = this.loop;
    if (!loop) return;
    this.loop = undefined;
    loop.stop.abort();
    this.phase = "stopping the poll loop (last flush)";
    try {
      await loop.running;
    } catch {
      // A fatal error: already reported by fail(); what the loop owned is released below.
    }
    try {
      loop.poller[Symbol.dispose]();
    } finally {
      try {
        if (loop.delivery instanceof DeliveryQueue) {
          const { shutdownDrainMs } = deliverySettings(this.configNow);
          this.phase =
            `draining the delivery queue of ${loop.delivery.scheme} (${shutdownDrainMs} ms)`;
          await loop.delivery.close(shutdownDrainMs);
          this.deps.log.info(deliveryAccount(loop.delivery.scheme, this.deps.counters));
        }
        this.phase = `closing the destination ${loop.delivery.scheme}`;
        await loop.delivery[Symbol.asyncDispose]();
      } finally {
        loop.capture?.close();
        this.closeEnrichment();
      }
    }
  }

  /**
   * Applies a new (validated) configuration in this process: flush, rebuild, restart. If the new
   * configuration cannot start (its destination cannot be opened), the previous one is restored
   * and the error is thrown.
   */
  async reconfigure(next: XtcpConfig): Promise<void> {
    if (this.stopped) throw new Error("The daemon is stopping");
    this.deps.counters.inc("ConfigService", "Set", "count");
    const previous = this.configNow;
    this.reconfiguring = true;
    try {
      await this.stopLoop();
      this.configNow = clone(XtcpConfigSchema, next);
      try {
        await this.start();
      } catch (err) {
        this.deps.counters.inc("ConfigService", "Set", "error");
        this.deps.log.error(`New config rejected, previous one restored: ${errorMessage(err)}`);
        this.configNow = previous;
        try {
          await this.start();
        } catch (again) {
          this.fail(again); // neither config runs: the daemon exits with an error
        }
        throw err;
      }
    } finally {
      this.reconfiguring = false;
    }
  }

  /** A new cadence: the poller's settings are replaced and the next poll starts now. */
  setPollFrequency(frequencyMs: number, timeoutMs: number): XtcpConfig {
    const next = clone(XtcpConfigSchema, this.configNow);
    next.pollFrequency = msToDuration(frequencyMs);
    next.pollTimeout = msToDuration(timeoutMs);
    this.configNow = next;
    this.loop?.poller.setCadence(frequencyMs, timeoutMs);
    return next;
  }

  /**
   * SetS3Upload: a new staleness interval (at once) and/or size threshold (from the next object)
   * for the s3parquet destination; returns the configuration in force. Throws when the
   * destination is not s3parquet.
   */
  setS3Upload(intervalMs: number | undefined, thresholdBytes: number | undefined): XtcpConfig {
    const dest = this.loop?.dest;
    if (!dest || !hasUploadControl(dest)) {
      throw new Error(`the destination is ${this.configNow.dest}, not s3parquet`);
    }
    const next = clone(XtcpConfigSchema, this.configNow);
    if (intervalMs !== undefined) next.s3FlushInterval = msToDuration(intervalMs);
    if (thresholdBytes !== undefined) next.s3ParquetFlushThresholdBytes = thresholdBytes;
    this.configNow = next;
    dest.setUpload(intervalMs, thresholdBytes);
    return next;
  }

  /** Requests one extra poll. */
  triggerPoll(): void {
    this.loop?.poller.trigger();
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
      this.deps.counters.inc("pollBurstRunner", "poke");
      this.burstTimer = setTimeout(fire, intervalMs);
    };
    fire();
    return true;
  }

  /** A live-record client (see {@link RecordHub.subscribe}). */
  subscribe(limit: number, onDrop: (rows: number) => void): Subscriber {
    return this.hub.subscribe(limit, onDrop);
  }

  /** Ends a client's stream. */
  unsubscribe(s: Subscriber): void {
    this.hub.unsubscribe(s);
  }

  /** Stops everything: last flush, destination closed, streams ended, sockets closed. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stopped = true;
    if (this.burstTimer !== undefined) clearTimeout(this.burstTimer);
    if (this.reconcileTimer !== undefined) clearInterval(this.reconcileTimer);
    for (const w of this.watchers) w.close();
    try {
      await this.stopLoop();
    } finally {
      this.phase = "ending the live streams and closing the namespace sockets";
      this.hub.close();
      this.registry[Symbol.dispose]();
      this.nsid?.[Symbol.dispose]();
      this.closeEnrichment();
      this.phase = "stopped";
    }
  }
}
