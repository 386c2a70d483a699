/**
 * What the poller works with, decided once (derived from the configuration by the daemon) and
 * never changed in place: a change makes a new settings object.
 *
 * @module
 */

/** How each namespace is dumped. */
export interface DumpSettings {
  /** Bitmask of attribute types to decode (bit N = type N). */
  readonly mask: number;
  /** `idiag_ext` of the request. */
  readonly ext: number;
  /** Receive buffer size in bytes (at least 32 KiB). */
  readonly bufferSize: number;
  /** First nlmsg_seq. */
  readonly seq: number;
  /** false: two v2 dumps per namespace instead of one compat dump for both families. */
  readonly oneWalk: boolean;
  /** `idiag_states`: the TCP states the kernel dumps. */
  readonly states: number;
  /** `--filter` in words ("" = none). */
  readonly filter: string;
  /** Its bytecode, sent with every request (absent without a filter). */
  readonly bytecode?: readonly number[];
}

/** Metadata stamped on every record, besides the namespace and the time. */
export interface StampSettings {
  readonly hostname: string;
  readonly daemonVersion: string;
  readonly location: string;
  readonly label: string;
  readonly tag: string;
}

/** `--ioUring`: receive through a ring. */
export interface UringSettings {
  /** recvmsg requests in flight. */
  readonly recvBatch: number;
  /** Completions reaped per look. */
  readonly cqeBatch: number;
  /** How long a receive waits (ms; 0 = forever). */
  readonly timeoutMs: number;
}

/** `--pipeline`: decode in a worker; what the worker needs to marshal and write. */
export interface PipelineSettings {
  /** Marshaller name and csv/tsv columns. */
  readonly marshal: string;
  readonly columns: string;
  /** The destination the worker writes itself (synchronous ones), else flushes come back. */
  readonly workerDest?: {
    readonly spec: string;
    readonly fileMaxBytes: number;
    readonly fileMaxAgeMs: number;
  };
}

/** Everything a {@link Poller} reads while it polls. */
export interface PollSettings {
  /** Time between polls (ms). */
  readonly frequencyMs: number;
  /** A poll stops between namespaces after this long (ms). */
  readonly timeoutMs: number;
  /** 0–100 % of the frequency: start delay and tick jitter. */
  readonly jitterPct: number;
  /** Stop after this many polls (0 = forever). */
  readonly maxLoops: number;
  /** Keep every Nth socket (1 = all). */
  readonly modulus: number;
  /** Flush an envelope at this many rows. */
  readonly envelopeRows: number;
  /** Flush an envelope above this many bytes. */
  readonly envelopeBytes: number;
  /** Reconcile namespaces right before each poll. */
  readonly reconcileBeforePoll: boolean;
  readonly dump: DumpSettings;
  readonly stamp: StampSettings;
  /** Present with `--ioUring`. */
  readonly uring?: UringSettings;
  /** Present with `--pipeline`. */
  readonly pipeline?: PipelineSettings;
  /** `--changesOnly`, `--socketOwners`. */
  readonly rows: RowSettings;
}

/** Which sockets become records, and what is added to them. */
export interface RowSettings {
  /** Only new and changed sockets, and one closed record per socket gone. */
  readonly changesOnly: boolean;
  /** With `changesOnly`: every socket every this many polls (0 = the first poll only). */
  readonly snapshotEvery: number;
  /** Owning process of each socket. */
  readonly socketOwners: boolean;
  /** How long the /proc walk for owners may run in one poll (ms). */
  readonly socketOwnersBudgetMs: number;
}

/**
 * `s` frozen, nested objects included: a settings object cannot be changed in place.
 *
 * @example
 * ```ts
 * const settings = freezeSettings(derived);
 * ```
 */
export function freezeSettings(s: PollSettings): PollSettings {
  for (const v of Object.values(s)) {
    if (v && typeof v === "object") {
      Object.freeze(v);
      for (const w of Object.values(v)) if (w && typeof w === "object") Object.freeze(w);
    }
  }
  return Object.freeze(s);
}
