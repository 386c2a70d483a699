/**
 * Go-style durations (`10s`, `500ms`, `1m30s`, `6h`), as the original's flags take them.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { type Duration, DurationSchema } from "@bufbuild/protobuf/wkt";

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration into milliseconds; throws a RangeError naming the value otherwise.
 *
 * @example
 * ```ts
 * parseDuration("1m30s"); // 90000
 * ```
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]];
    pos = re.lastIndex;
  }
  if (pos !== s.length || s.length === 0) {
    throw new RangeError(`Invalid duration "${text}": use Go syntax such as 10s, 500ms, 1m30s`);
  }
  return total;
}

/** Formats milliseconds as a Go duration string (`10s`, `1.5s`, `250ms`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Milliseconds as a protobuf `Duration`.
 *
 * @example
 * ```ts
 * msToDuration(1500); // { seconds: 1n, nanos: 500000000 }
 * ```
 */
export function msToDuration(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((ms - seconds * 1000) * 1e6),
  });
}

/**
 * A protobuf `Duration` in milliseconds (0 when unset).
 *
 * @example
 * ```ts
 * durationMs(msToDuration(1500)); // 1500
 * ```
 */
export function durationMs(d: Duration | undefined): number {
  return d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0;
}
