/**
 * Resolving the configuration: built-in defaults < flags < environment < `XTCP_CONFIG_JSON`,
 * secrets from `*_FILE` variables, then validation. The command line is parsed with
 * `node:util` parseArgs, after the Go spellings the original's unit files use are normalized.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { create, fromJsonString } from "@bufbuild/protobuf";
import { type XtcpConfig, XtcpConfigSchema } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import { errorMessage } from "../util/errors.ts";
import { ConfigError } from "./config_error.ts";
import {
  FLAGS,
  type FlagSpec,
  GO_RUNTIME_FLAGS,
  type GoRuntimeFlag,
  parseBool,
  PROCESS_FLAGS,
  type ProcessFlag,
  type ProcessFlagSpec,
  setFromText,
} from "./flags.ts";
import { validateConfig } from "./validate.ts";

/**
 * The built-in defaults.
 *
 * @example
 * ```ts
 * defaultConfig().grpcPort; // 8889
 * ```
 */
export function defaultConfig(): XtcpConfig {
  const cfg = create(XtcpConfigSchema, {});
  for (const spec of FLAGS) {
    setFromText(cfg, spec, spec.def, spec.flag ? `--${spec.flag}` : spec.field);
  }
  return cfg;
}

/** What the command line asked for besides the configuration. */
export interface LoadedConfig {
  /** The resolved, validated configuration. */
  config: XtcpConfig;
  /** `-v`: print the version and exit. */
  version: boolean;
  /** `-conf`: print the resolved configuration and exit. */
  conf: boolean;
  /** `-healthcheck`: probe the running daemon and exit. */
  healthcheck: boolean;
  /** `-h`/`--help`. */
  help: boolean;
  /** Process flags (listeners, token, stream queue), by name. */
  process: Record<ProcessFlag, string>;
  /** Where each setting came from (field → flag, env, env file; `*` for XTCP_CONFIG_JSON). */
  sources: Map<string, string>;
  /** The original's Go-runtime flags given, which have no effect here (see GO_RUNTIME_FLAGS). */
  ignored: GoRuntimeFlag[];
}

/** Flags that are not settings. */
const META = {
  v: { type: "boolean" },
  version: { type: "boolean" },
  conf: { type: "boolean" },
  healthcheck: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

const SPEC_BY_FLAG: ReadonlyMap<string, FlagSpec> = new Map(
  FLAGS.flatMap((s) => (s.flag ? [[s.flag, s] as const] : [])),
);
const PROCESS_NAMES = Object.keys(PROCESS_FLAGS) as ProcessFlag[];
const GO_NAMES = Object.keys(GO_RUNTIME_FLAGS) as GoRuntimeFlag[];

function isBooleanFlag(name: string): boolean {
  return name in META || SPEC_BY_FLAG.get(name)?.kind === "bool";
}

function isValueFlag(name: string): boolean {
  return (SPEC_BY_FLAG.has(name) && !isBooleanFlag(name)) ||
    (PROCESS_NAMES as string[]).includes(name) || (GO_NAMES as string[]).includes(name);
}

/**
 * Rewrites the original's Go spellings into what parseArgs takes: single-dash long flags
 * (`-maxLoops 1`) get two dashes; `-flag=false` of a boolean becomes `--no-flag`; a value that
 * starts with a dash (`-maxLoops -1`) is attached with `=` (Go takes it as the value, parseArgs
 * would call it ambiguous).
 */
function normalize(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const raw = args[i] ?? "";
    const m = /^--?([A-Za-z][\w.]*)(?:=(.*))?$/s.exec(raw);
    if (!m || m[1] === undefined) {
      out.push(raw);
      continue;
    }
    const name = m[1] === "h" ? "help" : m[1];
    const value = m[2];
    if (isBooleanFlag(name) && value !== undefined) {
      const b = parseBool(value);
      if (b === undefined) {
        throw new ConfigError(`Invalid value for --${name}: "${value}": must be true or false`);
      }
      out.push(b ? `--${name}` : `--no-${name}`);
    } else if (value === undefined && isValueFlag(name) && i + 1 < args.length) {
      out.push(`--${name}=${args[++i]}`);
    } else out.push(value === undefined ? `--${name}` : `--${name}=${value}`);
  }
  return out;
}

function parseCommandLine(args: readonly string[]) {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { ...META };
  for (const [flag, spec] of SPEC_BY_FLAG) {
    options[flag] = { type: spec.kind === "bool" ? "boolean" : "string" };
  }
  for (const name of [...PROCESS_NAMES, ...GO_NAMES]) options[name] = { type: "string" };
  try {
    return parseArgs({
      args: normalize(args),
      options,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const msg = errorMessage(err).replace(/\s*\n\s*/g, " ");
    const unknown = /^Unknown option '(-+[^']+)'/.exec(msg);
    if (unknown) throw new ConfigError(`Unknown flag ${unknown[1]} (see --help)`, { cause: err });
    const positional = /^Unexpected argument '([^']*)'/.exec(msg);
    if (positional) {
      throw new ConfigError(
        `Unexpected argument "${positional[1]}": flags start with - or -- (see --help)`,
        { cause: err },
      );
    }
    throw new ConfigError(`${msg} (see --help)`, { cause: err });
  }
}

function checkProcessFlag(name: ProcessFlag, value: string, source: string): void {
  const spec: ProcessFlagSpec = PROCESS_FLAGS[name];
  if (!spec.range) return;
  const n = Number(value);
  const [min, max] = spec.range;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(
      `Invalid value for ${source}: "${value}": must be an integer from ${min} to ${max}`,
    );
  }
}

/**
 * Resolves the configuration: defaults < flags < environment < XTCP_CONFIG_JSON, then validates
 * it. Throws ConfigError (one line) on the first problem.
 *
 * @example
 * ```ts
 * const { config } = loadConfig(["-frequency", "30s", "-timeout", "10s"], {});
 * ```
 */
export function loadConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): LoadedConfig {
  const cfg = defaultConfig();
  const values = parseCommandLine(args);
  const process = Object.fromEntries(
    PROCESS_NAMES.map((k) => [k, PROCESS_FLAGS[k].def]),
  ) as Record<ProcessFlag, string>;
  const out: LoadedConfig = {
    config: cfg,
    version: values.v === true || values.version === true,
    conf: values.conf === true,
    healthcheck: values.healthcheck === true,
    help: values.help === true,
    process,
    sources: new Map(),
    ignored: GO_NAMES.filter((n) => values[n] !== undefined),
  };
  for (const [flag, spec] of SPEC_BY_FLAG) {
    const v = values[flag];
    if (v === undefined) continue;
    setFromText(cfg, spec, typeof v === "boolean" ? String(v) : v, `--${flag}`);
    out.sources.set(spec.field, "flag");
  }
  for (const spec of FLAGS) {
    if (!spec.env) continue;
    const v = env[spec.env];
    if (v === undefined) continue;
    setFromText(cfg, spec, v, `${spec.env} (environment)`);
    out.sources.set(spec.field, "env");
  }
  for (const spec of FLAGS) {
    if (spec.kind !== "string" || !spec.secret) continue;
    const path = env[spec.secret.envFile];
    if (!path) continue;
    try {
      cfg[spec.field] = Deno.readTextFileSync(path).trim();
    } catch (err) {
      throw new ConfigError(`Cannot read ${spec.secret.envFile}=${path}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    out.sources.set(spec.field, "env file");
  }
  for (const name of PROCESS_NAMES) {
    const fromFlag = values[name];
    if (typeof fromFlag === "string") {
      checkProcessFlag(name, fromFlag, `--${name}`);
      process[name] = fromFlag;
    }
    const fromEnv = env[PROCESS_FLAGS[name].env];
    if (fromEnv) {
      checkProcessFlag(name, fromEnv, `${PROCESS_FLAGS[name].env} (environment)`);
      process[name] = fromEnv;
    }
  }
  const json = env.XTCP_CONFIG_JSON;
  if (json) {
    try {
      out.config = fromJsonString(XtcpConfigSchema, json);
    } catch (err) {
      throw new ConfigError(`Invalid XTCP_CONFIG_JSON: ${errorMessage(err)}`, { cause: err });
    }
    out.sources.clear();
    out.sources.set("*", "XTCP_CONFIG_JSON");
  }
  if (!out.version && !out.help && !out.healthcheck) {
    const problems = validateConfig(out.config);
    if (problems[0] !== undefined) throw new ConfigError(problems[0]);
  }
  return out;
}
