/**
 * Validation of a whole configuration: every flag's own rule from the table, then the few rules
 * that involve more than one field. Each problem is one line naming the flag, the value and the
 * rule.
 *
 * @module
 */
import type { XtcpConfig } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import { DECODERS } from "../netlink/deserializers.ts";
import { FIELD_BY_COLUMN } from "../record/fields.ts";
import { durationMs, formatDuration } from "../util/duration.ts";
import { flagName, FLAGS, type FlagSpec } from "./flags.ts";

/** The problem with one field under its flag's rule, if any. */
function checkFlag(cfg: XtcpConfig, spec: FlagSpec): string | undefined {
  const bad = (value: string, rule: string) =>
    `Invalid value for ${flagName(spec)}: "${value}": ${rule}`;
  switch (spec.kind) {
    case "uint":
    case "uint64": {
      if (!spec.range) return undefined;
      const v = Number(cfg[spec.field]);
      const [min, max] = spec.range;
      return v < min || v > max ? bad(String(v), `must be from ${min} to ${max}`) : undefined;
    }
    case "duration": {
      if (!spec.range) return undefined;
      const ms = durationMs(cfg[spec.field]);
      const { min, above, max } = spec.range;
      if ((above ? ms > min : ms >= min) && ms <= max) return undefined;
      return bad(
        formatDuration(ms),
        `must be ${above ? "above" : "at least"} ${formatDuration(min)} and at most ${
          formatDuration(max)
        }`,
      );
    }
    case "string": {
      const v = cfg[spec.field];
      if (spec.length) {
        const [min, max] = spec.length;
        if (v.length < min || v.length > max) {
          return bad(v, `length must be from ${min} to ${max}`);
        }
      }
      if (spec.oneOf && !spec.oneOf.values.includes(v)) {
        const list = spec.oneOf.values.filter((x) => x).join(", ");
        return bad(
          v,
          spec.oneOf.noun ? `valid ${spec.oneOf.noun} are ${list}` : `must be one of ${list}`,
        );
      }
      const problem = spec.check?.(v);
      return problem === undefined ? undefined : bad(v, problem);
    }
    case "list": {
      const v = cfg[spec.field];
      return spec.maxItems !== undefined && v.length > spec.maxItems
        ? bad(v.join(","), `at most ${spec.maxItems} items`)
        : undefined;
    }
    case "deserializers": {
      const unknown = Object.keys(cfg.enabledDeserializers?.enabled ?? {}).filter((n) =>
        !(n in DECODERS)
      );
      return unknown.length ? bad(unknown.join(","), "unknown decoder") : undefined;
    }
    case "bool":
      return undefined;
  }
}

/**
 * Every rule of the configuration (reference §1.3, plus destination and column checks); returns
 * one message per violation, each naming the flag, the value and the rule.
 *
 * @example
 * ```ts
 * const problems = validateConfig(defaultConfig()); // []
 * ```
 */
export function validateConfig(cfg: XtcpConfig): string[] {
  const out: string[] = [];
  for (const spec of FLAGS) {
    const problem = checkFlag(cfg, spec);
    if (problem) out.push(problem);
  }
  const frequency = durationMs(cfg.pollFrequency);
  const timeout = durationMs(cfg.pollTimeout);
  if (timeout >= frequency) {
    out.push(
      `Invalid value for --timeout: "${formatDuration(timeout)}": ` +
        `Poll timeout must be less than the poll interval (--frequency ${
          formatDuration(frequency)
        })`,
    );
  }
  if (cfg.csvColumns && (cfg.marshalTo === "csv" || cfg.marshalTo === "tsv")) {
    for (const col of cfg.csvColumns.split(",").map((s) => s.trim())) {
      if (!FIELD_BY_COLUMN.has(col)) {
        out.push(`Invalid value for --columns: "${col}": unknown column`);
      }
    }
  }
  return out;
}
