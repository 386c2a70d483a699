/**
 * The gRPC API on node:http2 + connect-node (real HTTP/2 with trailers): ConfigService and
 * XTCPFlatRecordService with the reference's messages, gRPC health and server reflection.
 * Loopback by default; an optional bearer token is checked on every call but health's.
 *
 * @module
 */
import * as http2 from "node:http2";
import { clone, create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { ConfigService, XtcpConfigSchema } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import {
  FlatRecordsResponseSchema,
  PollFlatRecordsResponseSchema,
  XTCPFlatRecordService,
} from "../gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { keepSecrets, redact as redacted } from "../config/redact.ts";
import { validateConfig } from "../config/validate.ts";
import { durationMs, msToDuration } from "../util/duration.ts";
import { errorMessage } from "../util/errors.ts";
import type { DaemonControl } from "./control.ts";
import { PROBE_SERVICES, Reflection, registerHealth, registerReflection } from "./grpc_probes.ts";
import type { Metrics } from "./metrics.ts";

function invalid(problems: string[]): ConnectError {
  return new ConnectError(problems.join("; "), Code.InvalidArgument);
}

function ms(d: Duration | undefined, field: string): number {
  if (!d) throw new ConnectError(`${field} is required`, Code.InvalidArgument);
  return durationMs(d);
}

/**
 * A response whose field 1 (xtcp_flat_record) is `row` (length prefix and encoded record) as
 * collected: written out as it is, never decoded or re-encoded.
 */
function asField1<T extends DescMessage>(schema: T, row: Uint8Array): MessageShape<T> {
  const m = create(schema);
  m.$unknown = [{ no: 1, wireType: WireType.LengthDelimited, data: row }];
  return m;
}

/** Options of {@link serveGrpc}. */
export interface GrpcOptions {
  daemon: DaemonControl;
  metrics: Metrics;
  hostname: string;
  port: number;
  /** Required bearer token; empty = none. */
  token: string;
  /** Capacity of each stream client's queue (records). */
  queueLimit?: number;
  /** Aborted when the server is about to close: health Watch streams end. */
  closing?: AbortSignal;
}

/** Starts the gRPC server; resolves once it listens. */
export function serveGrpc(o: GrpcOptions): Promise<http2.Http2Server> {
  const d = o.daemon;
  const m = o.metrics;
  const timed = <T>(method: string, fn: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    m.configGrpc.labels(method, "start", "count").inc();
    return Promise.resolve().then(fn).then(
      (v) => {
        m.configGrpcHist.labels(method, "complete", "count").observe(
          (performance.now() - t0) / 1000,
        );
        return v;
      },
      (err) => {
        const code = err instanceof ConnectError ? err.code : Code.Internal;
        m.configGrpc.labels(
          method,
          code === Code.InvalidArgument ? "Validate" : Code[code],
          "error",
        )
          .inc();
        throw err;
      },
    );
  };
  /** One live stream's encoded rows: its queue, its counters, its duration. */
  async function* stream(method: "FlatRecords" | "PollFlatRecords", signal: AbortSignal) {
    const t0 = performance.now();
    const sent = method === "FlatRecords" ? "frSent" : "pfrSent";
    const chFull = m.recordGrpc.labels(method, "chFull", "drop");
    const sub = d.subscribe(o.queueLimit ?? 10_000, (n) => chFull.inc(n));
    m.recordGrpc.labels(method, "start", "count").inc();
    try {
      for await (const row of sub.records(signal)) {
        d.counters.inc("flatRecordServiceSend", sent);
        yield row;
      }
    } finally {
      d.unsubscribe(sub);
      m.recordGrpc.labels(method, "complete", "count").inc();
      m.recordGrpcHist.labels(method, "complete", "count").observe(
        (performance.now() - t0) / 1000,
      );
    }
  }
  const auth: Interceptor = (next) => (req) => {
    // Health is a probe: open, like /healthz and /readyz.
    if (req.service.typeName === Health.typeName) return next(req);
    if (o.token && req.header.get("authorization") !== `Bearer ${o.token}`) {
      throw new ConnectError("missing or invalid bearer token", Code.Unauthenticated);
    }
    return next(req);
  };
  const services = [ConfigService, XTCPFlatRecordService];
  const reflection = new Reflection([...services, ...PROBE_SERVICES]);
  const routes = (router: ConnectRouter) => {
    registerHealth(router, {
      serving: () => d.ready,
      services,
      closing: o.closing ?? new AbortController().signal,
    });
    registerReflection(router, reflection);
    router.service(ConfigService, {
      get: () => timed("Get", () => ({ config: redacted(d.config) })),
      set: (req) =>
        timed("Set", async () => {
          if (!req.config) throw new ConnectError("config is required", Code.InvalidArgument);
          const next = keepSecrets(req.config, d.config); // a blank secret keeps the running one
          const problems = validateConfig(next);
          if (next.grpcPort !== d.config.grpcPort) {
            problems.push(
              `grpc_port ${next.grpcPort}: the API's port cannot change at runtime (it is ${d.config.grpcPort}; restart with --grpcPort)`,
            );
          }
          if (problems.length) throw invalid(problems);
          // Flush, rebuild and restart in this process; answer once the new config runs.
          try {
            await d.reconfigure(next);
            m.configGrpc.labels("Set", "reconfigure", "count").inc();
          } catch (err) {
            throw new ConnectError(
              `the new config cannot start (the previous one runs): ${errorMessage(err)}`,
              Code.FailedPrecondition,
              undefined,
              undefined,
              err,
            );
          }
          return { config: redacted(next) };
        }),
      setPollFrequency: (req) =>
        timed("SetPollFrequency", () => {
          const f = ms(req.pollFrequency, "poll_frequency");
          const t = ms(req.pollTimeout, "poll_timeout");
          const next = clone(XtcpConfigSchema, d.config);
          next.pollFrequency = msToDuration(f);
          next.pollTimeout = msToDuration(t);
          const problems = validateConfig(next).filter((p) => /--(frequency|timeout)/.test(p));
          if (problems.length) throw invalid(problems);
          const applied = d.setPollFrequency(f, t); // restarts the cadence now
          d.counters.inc("Poller", "ticker.Reset");
          return { config: redacted(applied) };
        }),
      triggerPoll: () =>
        timed("TriggerPoll", () => {
          d.triggerPoll();
          d.counters.inc("Poller", "pollRequestCh");
          return {};
        }),
      triggerPollBurst: (req) =>
        timed("TriggerPollBurst", () => {
          if (req.count < 1 || req.count > 1000) {
            throw new ConnectError(
              `count ${req.count}: must be from 1 to 1000`,
              Code.InvalidArgument,
            );
          }
          const interval = ms(req.interval, "interval");
          if (interval < 1000 || interval > 3_600_000) {
            throw new ConnectError(
              `interval ${interval} ms: must be from 1s to 1h`,
              Code.InvalidArgument,
            );
          }
          const timeout = durationMs(d.config.pollTimeout);
          if (interval <= timeout) {
            throw new ConnectError(
              `interval ${interval} ms must exceed poll_timeout ${timeout} ms`,
              Code.InvalidArgument,
            );
          }
          if (!d.burst(req.count, interval)) {
            m.configGrpc.labels("TriggerPollBurst", "burstBusy", "error").inc();
            throw new ConnectError("a poll burst is already running", Code.ResourceExhausted);
          }
          d.counters.inc("pollBurstRunner", "burst");
          return { count: req.count, interval: create(DurationSchema, req.interval) };
        }),
      setS3Upload: (req) =>
        timed("SetS3Upload", () => {
          if (!req.s3FlushInterval && req.s3ParquetFlushThresholdBytes === 0) {
            throw new ConnectError(
              "set s3_flush_interval and/or s3_parquet_flush_threshold_bytes",
              Code.InvalidArgument,
            );
          }
          if (!d.config.dest.startsWith("s3parquet:")) {
            m.configGrpc.labels("SetS3Upload", "notS3Parquet", "error").inc();
            throw new ConnectError(
              `the destination is ${d.config.dest}, not s3parquet`,
              Code.FailedPrecondition,
            );
          }
          const interval = req.s3FlushInterval
            ? ms(req.s3FlushInterval, "s3_flush_interval")
            : undefined;
          if (interval !== undefined && interval <= 0) {
            throw new ConnectError("s3_flush_interval must be above 0", Code.InvalidArgument);
          }
          const threshold = req.s3ParquetFlushThresholdBytes || undefined;
          const applied = d.setS3Upload(interval, threshold);
          return { config: redacted(applied) };
        }),
    });
    router.service(XTCPFlatRecordService, {
      async *flatRecords(_req, ctx) {
        for await (const row of stream("FlatRecords", ctx.signal)) {
          yield asField1(FlatRecordsResponseSchema, row);
        }
      },
      async *pollFlatRecords(reqs, ctx) {
        // Each request from the client asks for one poll now; records flow as for FlatRecords.
        const pump = (async () => {
          for await (const _ of reqs) {
            m.recordGrpc.labels("PollFlatRecords", "srv.Recv", "count").inc();
            d.triggerPoll();
          }
        })().catch(() => m.recordGrpc.labels("PollFlatRecords", "srv.Recv", "error").inc());
        try {
          for await (const row of stream("PollFlatRecords", ctx.signal)) {
            yield asField1(PollFlatRecordsResponseSchema, row);
          }
        } finally {
          await pump;
        }
      },
    });
  };
  const server = http2.createServer(connectNodeAdapter({ routes, interceptors: [auth] }));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.hostname, () => resolve(server));
  });
}
