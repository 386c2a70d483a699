/**
 * Secrets: which fields they are (the flag table says), blanking them for --conf, logs and the
 * API, and keeping the running ones when a new configuration leaves them blank.
 *
 * @module
 */
import { clone, toJsonString } from "@bufbuild/protobuf";
import { type XtcpConfig, XtcpConfigSchema } from "../gen/xtcp_config/v1/xtcp_config_pb.ts";
import { FLAGS, type StringFlag } from "./flags.ts";

/** The secret fields (never printed, logged or answered). */
export const SECRET_FIELDS: readonly StringFlag["field"][] = FLAGS.flatMap((s) =>
  s.kind === "string" && s.secret ? [s.field] : []
);

/**
 * A copy of `cfg` with every secret blanked.
 *
 * @example
 * ```ts
 * redact(cfg).s3SecretKey; // ""
 * ```
 */
export function redact(cfg: XtcpConfig): XtcpConfig {
  const copy = clone(XtcpConfigSchema, cfg);
  for (const f of SECRET_FIELDS) copy[f] = "";
  return copy;
}

/**
 * The configuration with secrets blanked, as protojson (for --conf).
 *
 * @example
 * ```ts
 * console.log(redactedJson(cfg));
 * ```
 */
export function redactedJson(cfg: XtcpConfig): string {
  return toJsonString(XtcpConfigSchema, redact(cfg), { prettySpaces: 2, alwaysEmitImplicit: true });
}

/**
 * `next` with each secret it leaves blank taken from `current` (a client that read the config
 * through the API got the secrets blanked, and sends them back so).
 *
 * @example
 * ```ts
 * const applied = keepSecrets(fromClient, running);
 * ```
 */
export function keepSecrets(next: XtcpConfig, current: XtcpConfig): XtcpConfig {
  const out = clone(XtcpConfigSchema, next);
  for (const f of SECRET_FIELDS) if (!out[f]) out[f] = current[f];
  return out;
}
