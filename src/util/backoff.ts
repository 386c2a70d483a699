/**
 * Exponential backoff with jitter, the one implementation every retry and reconnect uses.
 *
 * @module
 */

/** Settings of a {@link Backoff}. */
export interface BackoffOptions {
  /** First delay in ms. */
  initialMs: number;
  /** Largest delay in ms. */
  maxMs: number;
  /** Growth per attempt; default 2. */
  multiplier?: number;
  /** Random spread, 0 to 1, of each delay (±); default 0.2. */
  jitter?: number;
  /** Random source in [0, 1); default Math.random. */
  random?: () => number;
}

/**
 * Delays for successive attempts: `initialMs`, then × multiplier up to `maxMs`, each spread by
 * ±jitter; {@link Backoff.reset} after a success starts again from `initialMs`.
 *
 * @example
 * ```ts
 * const b = new Backoff({ initialMs: 100, maxMs: 30_000 });
 * b.next(); // about 100
 * b.next(); // about 200
 * b.reset();
 * ```
 */
export class Backoff {
  /** Attempts since the last reset. */
  attempts = 0;
  private readonly multiplier: number;
  private readonly jitter: number;
  private readonly random: () => number;

  /** @param o initial and largest delay, growth, jitter */
  constructor(private readonly o: BackoffOptions) {
    if (!(o.initialMs > 0) || !(o.maxMs >= o.initialMs)) {
      throw new RangeError(
        `Invalid backoff: initial ${o.initialMs} ms, max ${o.maxMs} ms: need 0 < initial <= max`,
      );
    }
    this.multiplier = o.multiplier ?? 2;
    this.jitter = Math.min(1, Math.max(0, o.jitter ?? 0.2));
    this.random = o.random ?? Math.random;
  }

  /** The delay before the next attempt, in ms. */
  next(): number {
    const base = Math.min(this.o.maxMs, this.o.initialMs * this.multiplier ** this.attempts);
    this.attempts++;
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.max(0, Math.min(this.o.maxMs, base + spread));
  }

  /** After a success: the next delay is `initialMs` again. */
  reset(): void {
    this.attempts = 0;
  }
}
