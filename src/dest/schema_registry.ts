/**
 * The Kafka schema registry step of the `kafka:` destination (Confluent-compatible REST API), as
 * in the original: at startup the `.proto` text of `--xtcpProtoFile` is registered as subject
 * `<topic>-value` (schemaType PROTOBUF) at `--kafkaSchemaUrl`, then the subject's latest version
 * is read and its id compared with the one registration returned. Every failure is logged and
 * counted, never fatal; the records never carry the registry's wire header.
 *
 * @module
 */
import { errorMessage } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";

/** Where and what to register. */
export interface SchemaRegistryOptions {
  /** Registry base URL (`--kafkaSchemaUrl`). */
  url: string;
  /** Path of the .proto text (`--xtcpProtoFile`). */
  protoFile: string;
  /** Kafka topic: the subject is `<topic>-value`. */
  topic: string;
  /** Per-request timeout (ms). */
  timeoutMs?: number;
  counters: Counters;
  log: Logger;
}

/** What happened, for logs and tests. */
export type SchemaOutcome =
  | { result: "match"; id: number; version: number }
  | { result: "mismatch"; id: number; latestId: number; version: number }
  | { result: "failed"; step: "read" | "register" | "latest"; error: string };

const CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";
const FN = "destKafkaSchemaRegistry";

async function call(url: string, init: RequestInit, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, {
    ...init,
    headers: { accept: CONTENT_TYPE, "content-type": CONTENT_TYPE },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`HTTP ${res.status} ${res.statusText}: ${text.trim().slice(0, 200)}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${text.trim().slice(0, 200)}`, { cause: err });
  }
}

function numberField(body: unknown, field: string): number {
  const v = typeof body === "object" && body !== null
    ? (body as Record<string, unknown>)[field]
    : undefined;
  if (typeof v !== "number") throw new Error(`answer has no numeric "${field}"`);
  return v;
}

/**
 * Registers the proto and compares it with the latest version. Never throws: the outcome is
 * logged (info), counted (`destKafkaSchemaRegistry` …) and returned.
 *
 * @example
 * ```ts
 * await registerSchema({ url: "http://localhost:18081", protoFile, topic: "xtcp", counters, log });
 * ```
 */
export async function registerSchema(o: SchemaRegistryOptions): Promise<SchemaOutcome> {
  const subject = `${o.topic}-value`;
  const base = o.url.replace(/\/+$/, "");
  const timeoutMs = o.timeoutMs ?? 3000;
  const fail = (step: "read" | "register" | "latest", err: unknown): SchemaOutcome => {
    const error = errorMessage(err);
    o.counters.inc(FN, step, "error");
    o.log.info(`schema registry (not fatal): ${step} of subject ${subject} failed: ${error}`);
    return { result: "failed", step, error };
  };
  let schema: string;
  try {
    schema = await Deno.readTextFile(o.protoFile);
  } catch (err) {
    return fail("read", new Error(`cannot read ${o.protoFile}: ${errorMessage(err)}`));
  }
  const versions = `${base}/subjects/${encodeURIComponent(subject)}/versions`;
  let id: number;
  try {
    const body = JSON.stringify({ schemaType: "PROTOBUF", schema });
    id = numberField(await call(versions, { method: "POST", body }, timeoutMs), "id");
    o.counters.inc(FN, "register");
  } catch (err) {
    return fail("register", err);
  }
  let latestId: number;
  let version: number;
  try {
    const latest = await call(`${versions}/latest`, { method: "GET" }, timeoutMs);
    latestId = numberField(latest, "id");
    version = numberField(latest, "version");
  } catch (err) {
    return fail("latest", err);
  }
  if (latestId === id) {
    o.counters.inc(FN, "match");
    o.log.info(
      `schema registry: ${subject} registered as id ${id}, the latest (version ${version})`,
    );
    return { result: "match", id, version };
  }
  o.counters.inc(FN, "mismatch");
  o.log.info(
    `schema registry: ${subject} registered as id ${id}, but the latest (version ${version}) is id ${latestId}`,
  );
  return { result: "mismatch", id, latestId, version };
}
