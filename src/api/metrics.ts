/**
 * Prometheus metrics (prom-client): the original's families and labels — `xtcp_counts`,
 * `xtcp_histograms`, `xtcp_gauge`, `xtcp_config_grpc_*`, `xtcp_record_grpc_*` — plus process
 * metrics.
 *
 * @module
 */
import client from "prom-client";
import type { Counters } from "../util/log.ts";
import type { Backlog } from "../dest/queue.ts";
import type { PollSummary } from "../poll/poller.ts";

const LABELS = ["function", "variable", "type"] as const;

/** Metrics of one daemon. */
export class Metrics {
  /** The registry served on /metrics. */
  readonly registry: client.Registry = new client.Registry();
  /** gRPC counters of ConfigService. */
  readonly configGrpc: client.Counter<(typeof LABELS)[number]>;
  /** gRPC counters of XTCPFlatRecordService. */
  readonly recordGrpc: client.Counter<(typeof LABELS)[number]>;
  /** gRPC call durations of ConfigService (seconds). */
  readonly configGrpcHist: client.Summary<(typeof LABELS)[number]>;
  /** gRPC durations of XTCPFlatRecordService (seconds). */
  readonly recordGrpcHist: client.Summary<(typeof LABELS)[number]>;
  private readonly hist: client.Summary<(typeof LABELS)[number]>;
  private readonly seen = new Map<string, number>();

  /**
   * @param counters the daemon's counters, exported as xtcp_counts at each scrape
   * @param namespaces current number of tracked namespaces (xtcp_gauge)
   * @param delivery what waits to be delivered, and where to (xtcp_dest_queue_*, xtcp_dest_spool_*)
   */
  constructor(
    counters: Counters,
    namespaces: () => number,
    delivery: () => { scheme: string; backlog: Backlog | undefined } | undefined = () => undefined,
    sharedTables: () => number = () => 0,
  ) {
    const registers = [this.registry];
    const seen = this.seen;
    new client.Counter({
      name: "xtcp_counts",
      help: "xtcp2 event counters by function, variable and type",
      labelNames: LABELS,
      registers,
      collect() {
        for (const [key, value] of counters.values) {
          const first = key.indexOf("/");
          const last = key.lastIndexOf("/");
          const delta = value - (seen.get(key) ?? 0);
          if (delta <= 0) continue;
          seen.set(key, value);
          this.labels(key.slice(0, first), key.slice(first + 1, last), key.slice(last + 1)).inc(
            delta,
          );
        }
      },
    });
    const summary = (name: string, help: string) =>
      new client.Summary({
        name,
        help,
        labelNames: LABELS,
        percentiles: [0.1, 0.5, 0.99],
        maxAgeSeconds: 300,
        ageBuckets: 5,
        registers,
      });
    this.hist = summary(
      "xtcp_histograms",
      "xtcp2 durations in seconds by function, variable and type",
    );
    new client.Gauge({
      name: "xtcp_gauge",
      help: "network namespaces tracked",
      registers,
      collect() {
        this.set(namespaces());
      },
    });
    const counter = (name: string, help: string) =>
      new client.Counter({ name, help, labelNames: LABELS, registers });
    this.configGrpc = counter("xtcp_config_grpc_counts", "ConfigService calls");
    this.configGrpcHist = summary(
      "xtcp_config_grpc_histograms",
      "ConfigService call durations in seconds",
    );
    this.recordGrpc = counter(
      "xtcp_record_grpc_counts",
      "XTCPFlatRecordService streams and records",
    );
    this.recordGrpcHist = summary(
      "xtcp_record_grpc_histograms",
      "XTCPFlatRecordService durations in seconds",
    );
    new client.Gauge({
      name: "xtcp_namespaces_sharing_host_tcp_table",
      help: "namespaces without a TCP hash table of their own (net.ipv4.tcp_ehash_entries < 0)",
      registers,
      collect() {
        this.set(sharedTables());
      },
    });
    const backlogGauge = (name: string, help: string, read: (b: Backlog) => number) =>
      new client.Gauge({
        name,
        help,
        labelNames: ["dest"],
        registers,
        collect() {
          this.reset();
          const d = delivery();
          if (d?.backlog) this.labels(d.scheme).set(read(d.backlog));
        },
      });
    backlogGauge("xtcp_dest_queue_envelopes", "envelopes waiting in memory", (b) => b.envelopes);
    backlogGauge("xtcp_dest_queue_rows", "rows waiting in memory", (b) => b.rows);
    backlogGauge("xtcp_dest_queue_bytes", "bytes waiting in memory", (b) => b.bytes);
    backlogGauge(
      "xtcp_dest_queue_oldest_seconds",
      "age of the oldest envelope waiting in memory",
      (b) => b.oldestMs / 1000,
    );
    backlogGauge(
      "xtcp_dest_spool_envelopes",
      "envelopes waiting on disk",
      (b) => b.spooled.envelopes,
    );
    backlogGauge("xtcp_dest_spool_rows", "rows waiting on disk", (b) => b.spooled.rows);
    backlogGauge("xtcp_dest_spool_bytes", "bytes waiting on disk", (b) => b.spooled.bytes);
    client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
    // prom-client also exports its gauges of active handles, requests and resources as *_total,
    // a suffix Prometheus reserves for counters (promtool says so); the same values stay under
    // nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const what of ["handles", "requests", "resources"]) {
      this.registry.removeSingleMetric(`nodejs_active_${what}_total`);
    }
  }

  /** Records one poll. */
  poll(s: PollSummary): void {
    this.hist.labels("Poller", "pollDuration", "count").observe(s.ms / 1000);
    this.hist.labels("Poller", "pollSockets", "count").observe(s.sockets);
    this.hist.labels("Poller", "pollKernelSeconds", "count").observe(s.kernelMs / 1000);
    const dump = this.hist.labels("Poller", "namespaceDumpSeconds", "count");
    for (const ms of s.dumpMs) dump.observe(ms / 1000);
  }

  /** The exposition text and its content type. */
  async expose(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
