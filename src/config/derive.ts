/**
 * What the parts of the daemon are given, derived from the configuration once: the poller's
 * settings, the destination's options, the sizes whose 0 means a default.
 *
 * @module
 */
import type { XtcpConfig } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import type { DeliverySettings, DestOptions, S3ParquetOptions } from "../dest/destination.ts";
import { PARQUET_CODECS } from "../format/parquet_codec.ts";
import { FULL_POLICIES } from "../dest/queue.ts";
import { isLocalScheme, parseDest } from "../dest/registry.ts";
import { decoderMask as maskOfNames, idiagExt } from "../netlink/deserializers.ts";
import { MIN_RECV_BUFFER } from "../netlink/dump.ts";
import { parseStates } from "../netlink/states.ts";
import { compileFilter, filterInWords, parseFilter } from "../netlink/filter.ts";
import { freezeSettings, type PollSettings } from "../poll/settings.ts";
import { durationMs } from "../util/duration.ts";
import type { Counters, Logger } from "../util/log.ts";

/**
 * The decoder bitmask of a configuration.
 *
 * @example
 * ```ts
 * idiagExt(decoderMask(defaultConfig())); // 0xfe
 * ```
 */
export function decoderMask(cfg: XtcpConfig): number {
  const enabled = cfg.enabledDeserializers?.enabled ?? {};
  return maskOfNames(Object.keys(enabled).filter((n) => enabled[n]));
}

/** Effective envelope thresholds (0 = defaults 10,000 rows, 768 KiB). */
export function envelopeLimits(cfg: XtcpConfig): { rows: number; bytes: number } {
  return {
    rows: cfg.envelopeFlushThresholdRows || 10000,
    bytes: cfg.envelopeFlushThresholdBytes || 786432,
  };
}

/** Rotation limits of file: destinations (0 = 64 MiB and 1 h). */
export function fileLimits(cfg: XtcpConfig): { fileMaxBytes: number; fileMaxAgeMs: number } {
  return {
    fileMaxBytes: Number(cfg.fileMaxBytes) || 64 * 1024 * 1024,
    fileMaxAgeMs: durationMs(cfg.fileMaxAge) || 3_600_000,
  };
}

/** Receive buffer size: packetSize (0 = 4096) × packetSizeMply (0 = 8), at least 32 KiB. */
export function recvBufferSize(cfg: XtcpConfig): number {
  return Math.max(MIN_RECV_BUFFER, (Number(cfg.packetSize) || 4096) * (cfg.packetSizeMply || 8));
}

/**
 * The poller's settings for `cfg`.
 *
 * @param host the OS hostname and this build's version, for records that do not set their own
 */
export function pollSettings(
  cfg: XtcpConfig,
  host: { hostname: string; version: string },
): PollSettings {
  const mask = decoderMask(cfg);
  const bufferSize = recvBufferSize(cfg);
  const env = envelopeLimits(cfg);
  const dest = parseDest(cfg.dest);
  const filter = parseFilter(cfg.filter);
  return freezeSettings({
    frequencyMs: durationMs(cfg.pollFrequency),
    timeoutMs: durationMs(cfg.pollTimeout),
    jitterPct: cfg.pollJitterPct,
    maxLoops: Number(cfg.maxLoops),
    modulus: Number(cfg.modulus) || 1,
    envelopeRows: env.rows,
    envelopeBytes: env.bytes,
    reconcileBeforePoll: cfg.reconcileBeforePoll,
    rows: {
      changesOnly: cfg.changesOnly,
      snapshotEvery: cfg.snapshotEvery,
      socketOwners: cfg.socketOwners,
      socketOwnersBudgetMs: durationMs(cfg.socketOwnersBudget) || 100,
    },
    dump: {
      mask,
      ext: idiagExt(mask),
      bufferSize,
      seq: cfg.nlmsgSeq,
      oneWalk: !cfg.twoWalks,
      states: parseStates(cfg.states),
      filter: filter === undefined ? "" : filterInWords(filter),
      ...(filter === undefined ? {} : { bytecode: Array.from(compileFilter(filter)) }),
    },
    stamp: {
      hostname: cfg.hostname || host.hostname,
      daemonVersion: cfg.daemonVersion || host.version,
      location: cfg.location,
      label: cfg.label,
      tag: cfg.tag,
    },
    ...(cfg.ioUring
      ? {
        uring: {
          recvBatch: cfg.ioUringRecvBatchSize || 64,
          cqeBatch: cfg.ioUringCqeBatchSize || 128,
          timeoutMs: Number(cfg.nlTimeoutMilliseconds),
        },
      }
      : {}),
    ...(cfg.pipeline
      ? {
        pipeline: {
          marshal: cfg.marshalTo,
          columns: cfg.csvColumns,
          ...(isLocalScheme(dest.scheme)
            ? { workerDest: { spec: cfg.dest, ...fileLimits(cfg) } }
            : {}),
        },
      }
      : {}),
  });
}

/**
 * The s3parquet options of `cfg`: the defaults resolved (interval max(frequency, 30 m), backoff
 * cap clamp(frequency / 10, 1 s, 1 h), region us-east-1), the object queue as the delivery
 * settings say.
 */
export function s3Options(cfg: XtcpConfig, hostname: string): S3ParquetOptions {
  const freq = durationMs(cfg.pollFrequency);
  const d = deliverySettings(cfg);
  return {
    endpoint: cfg.s3Endpoint,
    bucket: cfg.s3Bucket,
    prefix: cfg.s3Prefix,
    region: cfg.s3Region || "us-east-1",
    accessKey: cfg.s3AccessKey,
    secretKey: cfg.s3SecretKey,
    skipBucketProbe: cfg.s3SkipBucketProbe,
    hostname: cfg.hostname || hostname,
    flushBytes: cfg.s3ParquetFlushThresholdBytes,
    thresholdJitterPct: cfg.s3FlushThresholdJitterPct,
    flushIntervalMs: durationMs(cfg.s3FlushInterval) || Math.max(freq, 30 * 60_000),
    flushJitterPct: cfg.s3FlushJitterPct,
    uploadMaxAttempts: cfg.s3UploadMaxAttempts || 10,
    uploadBackoffCapMs: durationMs(cfg.s3UploadBackoffCap) ||
      Math.min(3_600_000, Math.max(1000, freq / 10)),
    codec: PARQUET_CODECS.find((c) => c === cfg.s3ParquetCodec) ?? "zstd",
    queue: d,
  };
}

/** The options the destination of `cfg` opens with. */
export function destOptions(
  cfg: XtcpConfig,
  deps: { counters: Counters; log: Logger; signal?: AbortSignal; hostname?: string },
): DestOptions {
  return {
    ...(parseDest(cfg.dest).scheme === "s3parquet"
      ? { s3: s3Options(cfg, deps.hostname ?? "") }
      : {}),
    marshal: cfg.marshalTo,
    topic: cfg.topic,
    kafkaCompression: cfg.kafkaCompression,
    kafkaSchemaUrl: cfg.kafkaSchemaUrl,
    xtcpProtoFile: cfg.xtcpProtoFile,
    sendTimeoutMs: durationMs(cfg.kafkaProduceTimeout),
    httpCaFile: cfg.httpCaFile,
    streamMaxLen: Number(cfg.valkeyStreamMaxLen) || 100,
    ...fileLimits(cfg),
    counters: deps.counters,
    log: deps.log,
    ...(deps.signal ? { signal: deps.signal } : {}),
  };
}

/** The delivery settings of `cfg` (0 = the defaults: 32 MiB, 1 s to 30 s, 1 GiB, 3 s). */
export function deliverySettings(cfg: XtcpConfig): DeliverySettings {
  const full = FULL_POLICIES.find((p) => p === cfg.destQueueFull) ?? "drop_oldest";
  const retryInitialMs = durationMs(cfg.destRetryInitial) || 1000;
  return {
    maxBytes: Number(cfg.destQueueBytes) || 32 * 1024 * 1024,
    full,
    retryInitialMs,
    retryMaxMs: Math.max(retryInitialMs, durationMs(cfg.destRetryMax) || 30_000),
    spoolDir: cfg.spoolDir,
    spoolMaxBytes: Number(cfg.spoolMaxBytes) || 1024 * 1024 * 1024,
    shutdownDrainMs: durationMs(cfg.shutdownDrain) || 3000,
  };
}
