/**
 * What the API needs of the running daemon: a small interface the daemon implements, so this
 * package never depends on the daemon itself.
 *
 * @module
 */
import type { XtcpConfig } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import type { Subscriber } from "../poll/record_hub.ts";
import type { Counters } from "../util/log.ts";

/** The daemon, as the gRPC services see it. */
export interface DaemonControl {
  /** The configuration in force. It is never changed in place: each change makes a new one. */
  readonly config: XtcpConfig;
  /** The daemon's counters (xtcp_counts). */
  readonly counters: Counters;
  /** Whether the poll loop runs and no shutdown has begun (health: SERVING). */
  readonly ready: boolean;
  /**
   * Applies a new (validated) configuration in this process: flush, rebuild, restart. Throws,
   * with the previous configuration running again, when the new one cannot start.
   */
  reconfigure(next: XtcpConfig): Promise<void>;
  /** A new cadence, at once (the next poll starts now); returns the configuration in force. */
  setPollFrequency(frequencyMs: number, timeoutMs: number): XtcpConfig;
  /**
   * SetS3Upload: a new staleness interval (at once) and/or size threshold (from the next
   * object) of the s3parquet destination; returns the configuration in force.
   */
  setS3Upload(intervalMs: number | undefined, thresholdBytes: number | undefined): XtcpConfig;
  /** Requests one extra poll. */
  triggerPoll(): void;
  /** Fires `count` polls `intervalMs` apart (the first now); false if a burst already runs. */
  burst(count: number, intervalMs: number): boolean;
  /** A live-record client with a queue of `limit` records; `onDrop` sees its drops. */
  subscribe(limit: number, onDrop: (rows: number) => void): Subscriber;
  /** Ends a client's stream. */
  unsubscribe(s: Subscriber): void;
}
