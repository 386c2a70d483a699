/**
 * Leveled logging to stderr (stdout is for records) and the daemon's counters, keyed like the
 * original's `xtcp_counts{function,variable,type}` so the Prometheus exporter can expose them.
 *
 * @module
 */

const enc = new TextEncoder();

/** Writes lines to stderr at or below a verbosity level. */
export class Logger {
  /**
   * @param level 0 = errors only, 1 = one summary line per poll (default), >10 more detail
   * @param write where lines go (default: stderr)
   */
  constructor(
    public level = 1,
    private readonly write: (line: string) => void = (l) =>
      Deno.stderr.writeSync(enc.encode(l + "\n")),
  ) {}
  /** Always printed. */
  error(msg: string): void {
    this.write(`xtcp2: error: ${msg}`);
  }
  /** Always printed. */
  warn(msg: string): void {
    this.write(`xtcp2: ${msg}`);
  }
  /** Printed at level ≥ 1. */
  info(msg: string): void {
    if (this.level >= 1) this.write(`xtcp2: ${msg}`);
  }
  /** Printed at level > 10. */
  debug(msg: string): void {
    if (this.level > 10) this.write(`xtcp2: ${msg}`);
  }
}

/** Monotonic counters keyed by function/variable/type. */
export class Counters {
  /** Current values. */
  readonly values: Map<string, number> = new Map();
  /** Values at the last {@link Counters.takeDeltas}. */
  private readonly taken = new Map<string, number>();
  /** Adds `n` to the counter `fn/variable/type`. */
  inc(fn: string, variable: string, type = "count", n = 1): void {
    const k = `${fn}/${variable}/${type}`;
    this.values.set(k, (this.values.get(k) ?? 0) + n);
  }
  /**
   * What each counter grew by since the last call, as `[key, delta]` pairs (for counters kept in
   * another thread: the pipeline's worker sends them to the main thread's counters).
   */
  takeDeltas(): [string, number][] {
    const out: [string, number][] = [];
    for (const [k, v] of this.values) {
      const d = v - (this.taken.get(k) ?? 0);
      if (d === 0) continue;
      out.push([k, d]);
      this.taken.set(k, v);
    }
    return out;
  }
  /** Adds deltas from {@link Counters.takeDeltas} of other counters. */
  addAll(deltas: Iterable<readonly [string, number]>): void {
    for (const [k, d] of deltas) this.values.set(k, (this.values.get(k) ?? 0) + d);
  }
  /** Current value of `fn/variable/type` (0 if never counted). */
  get(fn: string, variable: string, type = "count"): number {
    return this.values.get(`${fn}/${variable}/${type}`) ?? 0;
  }
}
