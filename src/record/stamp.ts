/**
 * The per-namespace, per-poll metadata stamped on every record (hostname, netns, timestamp, …).
 * It is the same for every socket of one namespace in one poll, so its wire bytes are encoded
 * once and copied into each record.
 *
 * @module
 */
import { FIELD_BY_NAME, FIELDS, type FieldSpec, SRC_META } from "./fields.ts";
import { OutBuf } from "./out_buf.ts";

/** Schema epoch written into `schema_version` (field 1). */
export const SCHEMA_VERSION = 1;

/** A metadata value: strings, 32/64-bit unsigned numbers, or bigint for 64-bit fields. */
export type StampValue = string | number | bigint;

const encoder = new TextEncoder();

/** Writes one tag + value of a metadata field; returns false (writes nothing) for a default value. */
export function writeMetaField(
  out: OutBuf,
  spec: FieldSpec,
  value: StampValue | undefined,
): boolean {
  if (value === undefined || value === "" || value === 0 || value === 0n) return false;
  switch (spec.type) {
    case "string": {
      const b = encoder.encode(String(value));
      out.ensure(b.length + 20);
      out.varint32((spec.number << 3) | 2);
      out.varint32(b.length);
      out.bytes(b);
      return true;
    }
    case "uint32":
    case "enum":
      out.ensure(10);
      out.varint32(spec.number << 3);
      out.varint32(Number(value));
      return true;
    case "uint64":
    case "int64": {
      const v = BigInt.asUintN(64, BigInt(value));
      out.ensure(16);
      out.varint32(spec.number << 3);
      out.varint64(Number(v & 0xffffffffn), Number(v >> 32n));
      return true;
    }
    default:
      throw new TypeError(`Metadata field ${spec.name} has unsupported type ${spec.type}`);
  }
}

/** What the encoder copies into every record: the encoded metadata around `record_counter`. */
export interface StampBytes {
  /** Encoded metadata fields numbered below `record_counter` (60). */
  readonly head: Uint8Array;
  /** Encoded metadata fields numbered above `record_counter` and below the kernel payload. */
  readonly tail: Uint8Array;
}

/**
 * Metadata of one namespace in one poll, keyed by snake_case proto field name.
 *
 * @example
 * ```ts
 * const stamp = new Stamp({ hostname: "node1", netns: "default", timestamp_ns: 1n });
 * ```
 */
export class Stamp implements StampBytes {
  /** Encoded metadata fields numbered below `record_counter` (60). */
  readonly head: Uint8Array;
  /** Encoded metadata fields numbered above `record_counter` and below the kernel payload. */
  readonly tail: Uint8Array;
  /** The values, with `schema_version` filled in. */
  readonly values: ReadonlyMap<string, StampValue>;

  /** @param values metadata by proto field name; unknown names throw */
  constructor(values: Record<string, StampValue | undefined> = {}) {
    const map = new Map<string, StampValue>([["schema_version", SCHEMA_VERSION]]);
    for (const [k, v] of Object.entries(values)) {
      const spec = FIELD_BY_NAME.get(k);
      if (!spec || spec.src !== SRC_META || k === "record_counter") {
        throw new TypeError(`Unknown metadata field: ${k}`);
      }
      if (v !== undefined) map.set(k, v);
    }
    this.values = map;
    const head = new OutBuf(256);
    const tail = new OutBuf(256);
    for (const spec of FIELDS) {
      if (spec.src !== SRC_META || spec.number === 60) continue;
      writeMetaField(spec.number < 60 ? head : tail, spec, map.get(spec.name));
    }
    this.head = head.u8.slice(0, head.pos);
    this.tail = tail.u8.slice(0, tail.pos);
  }

  /** A copy with some values replaced (e.g. a new timestamp for the next poll). */
  with(values: Record<string, StampValue | undefined>): Stamp {
    return new Stamp({ ...Object.fromEntries(this.values), ...values });
  }
}
