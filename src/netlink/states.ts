/**
 * TCP states as `--states` names them: `ss`'s state names and groups (`established`,
 * `time-wait`, `listening`, `connected`, …), the kernel's (`ESTABLISHED`, `TIME_WAIT`, `LISTEN`),
 * or a bitmask (`0x2`, bit N = state N): compiled to the request's `idiag_states`, so the kernel
 * itself skips the others.
 *
 * @module
 */
import { ALL_TCP_STATES, TCP_STATE_NAMES } from "./constants.ts";

const bit = (name: string) => 1 << TCP_STATE_NAMES.indexOf(name);

/** Every name `--states` takes, lower case with dashes, to its bits. */
const NAMES: ReadonlyMap<string, number> = (() => {
  const m = new Map<string, number>();
  for (const [i, n] of TCP_STATE_NAMES.entries()) {
    if (i > 0) m.set(n.toLowerCase().replaceAll("_", "-"), 1 << i);
  }
  // ss's spellings and groups (ss(8), "STATE-FILTER").
  const listening = bit("LISTEN");
  const closed = bit("CLOSE");
  const bucket = bit("SYN_RECV") | bit("TIME_WAIT");
  const connected = ALL_TCP_STATES & ~(listening | closed | 1);
  m.set("listening", listening);
  m.set("closed", closed);
  m.set("syn-recv", bit("SYN_RECV"));
  m.set("fin-wait-1", bit("FIN_WAIT1"));
  m.set("fin-wait-2", bit("FIN_WAIT2"));
  m.set("all", ALL_TCP_STATES);
  m.set("connected", connected);
  m.set("synchronized", connected & ~bit("SYN_SENT"));
  m.set("bucket", bucket);
  m.set("big", ALL_TCP_STATES & ~bucket);
  return m;
})();

/** A `--states` value that names no state. */
export class StatesSpecError extends RangeError {
  /**
   * @param spec the whole value
   * @param bad the part that is not a state
   */
  constructor(readonly spec: string, readonly bad: string) {
    super(
      `Unknown TCP state "${bad}" in "${spec}": use names such as established, listening, ` +
        `time-wait, groups (all, connected, synchronized, bucket, big) or a mask such as 0x2`,
    );
    this.name = "StatesSpecError";
  }
}

/**
 * The `idiag_states` bitmask of a `--states` value (a comma list; empty = all).
 *
 * @example
 * ```ts
 * parseStates("established,listening"); // (1 << 1) | (1 << 10)
 * parseStates("0x2"); // 2
 * ```
 */
export function parseStates(spec: string): number {
  const parts = spec.split(",").map((p) => p.trim()).filter((p) => p);
  if (parts.length === 0) return ALL_TCP_STATES;
  let mask = 0;
  for (const p of parts) {
    if (/^(0x[0-9a-f]+|\d+)$/i.test(p)) {
      const n = Number(p);
      if (n <= 0 || n > ALL_TCP_STATES) throw new StatesSpecError(spec, p);
      mask |= n;
      continue;
    }
    const bits = NAMES.get(p.toLowerCase().replaceAll("_", "-"));
    if (bits === undefined) throw new StatesSpecError(spec, p);
    mask |= bits;
  }
  return mask;
}

/**
 * The states of a bitmask in words, for logs (`all`, or `ESTABLISHED, LISTEN`).
 *
 * @example
 * ```ts
 * statesInWords(parseStates("established,listening")); // "ESTABLISHED, LISTEN"
 * ```
 */
export function statesInWords(mask: number): string {
  if ((mask & ALL_TCP_STATES) === ALL_TCP_STATES) return "all";
  return TCP_STATE_NAMES.filter((_, i) => mask & (1 << i)).join(", ");
}
