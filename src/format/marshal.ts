/**
 * Marshallers: what one envelope flush becomes on the wire. protobufList is the envelope the fast
 * encoder already built; the other formats decode it and render the rows.
 *
 * @module
 */
import { fromBinary, toJsonString } from "@bufbuild/protobuf";
import {
  EnvelopeSchema,
  type XtcpFlatRecord,
} from "../gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import type { EnvelopeWriter } from "../record/encoder.ts";
import { CONGESTION_ALGORITHM_NAMES, FIELDS, type FieldSpec } from "../record/fields.ts";
import { fieldValue as value, type RowFormat, rowWriter } from "./humanize.ts";

/** Turns a filled envelope into output bytes. */
export interface Marshaller {
  /** Name as on the command line. */
  readonly name: string;
  /** HTTP Content-Type of the output. */
  readonly contentType: string;
  /** "message": one self-contained unit per flush; "lines": newline-separated records. */
  readonly framing: "message" | "lines";
  /** The bytes for this envelope (may be a view into the writer: use before the next change). */
  marshal(env: EnvelopeWriter): Uint8Array;
}

const enc = new TextEncoder();

function decoded(env: EnvelopeWriter): XtcpFlatRecord[] {
  return fromBinary(EnvelopeSchema, env.envelope()).row;
}

/** A line format: one line per record, rendered by {@link rowWriter}. */
function rows(name: RowFormat, contentType: string, columns: string): Marshaller {
  const write = rowWriter(name, name === "csv" || name === "tsv" ? columns : "");
  return { name, contentType, framing: "lines", marshal: (env) => enc.encode(write(decoded(env))) };
}

/** Fields in proto order with their JSON names, for the row renderers. */
const SPECS: readonly FieldSpec[] = FIELDS;

/** Prototext of a flat record (scalar fields only, as the schema is). */
function protoText(r: XtcpFlatRecord, indent: string): string {
  let out = "";
  for (const s of SPECS) {
    const v = value(r, s);
    if (
      v === undefined || (!s.optional && (v === 0 || v === 0n || v === "" || v === false ||
        (v instanceof Uint8Array && v.length === 0)))
    ) continue;
    let text: string;
    if (s.type === "enum") text = CONGESTION_ALGORITHM_NAMES[v as number] ?? String(v);
    else if (v instanceof Uint8Array) {
      text = `"${Array.from(v, (b) => `\\${b.toString(8).padStart(3, "0")}`).join("")}"`;
    } else if (typeof v === "string") text = JSON.stringify(v);
    else text = String(v);
    out += `${indent}${s.name}: ${text}\n`;
  }
  return out;
}

/** Minimal MessagePack writer for maps of scalars. */
class MsgPack {
  private parts: number[] = [];
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
  private u(n: number, bytes: number): void {
    for (let i = bytes - 1; i >= 0; i--) {
      this.parts.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn));
    }
  }
  map(n: number): void {
    if (n < 16) this.parts.push(0x80 | n);
    else (this.parts.push(0xde), this.u(n, 2));
  }
  array(n: number): void {
    if (n < 16) this.parts.push(0x90 | n);
    else if (n < 65536) (this.parts.push(0xdc), this.u(n, 2));
    else (this.parts.push(0xdd), this.u(n, 4));
  }
  str(s: string): void {
    const b = enc.encode(s);
    if (b.length < 32) this.parts.push(0xa0 | b.length);
    else if (b.length < 256) this.parts.push(0xd9, b.length);
    else (this.parts.push(0xda), this.u(b.length, 2));
    for (const x of b) this.parts.push(x);
  }
  bool(b: boolean): void {
    this.parts.push(b ? 0xc3 : 0xc2);
  }
  bin(b: Uint8Array): void {
    this.parts.push(0xc4, b.length);
    for (const x of b) this.parts.push(x);
  }
  uint(v: number | bigint): void {
    const n = BigInt(v);
    if (n < 128n) this.parts.push(Number(n));
    else if (n < 0x100000000n) (this.parts.push(0xce), this.u(Number(n), 4));
    else {
      this.parts.push(0xcf);
      for (let i = 7; i >= 0; i--) this.parts.push(Number((n >> BigInt(8 * i)) & 0xffn));
    }
  }
  int(v: bigint): void {
    if (v >= 0n) return this.uint(v);
    this.parts.push(0xd3);
    const n = BigInt.asUintN(64, v);
    for (let i = 7; i >= 0; i--) this.parts.push(Number((n >> BigInt(8 * i)) & 0xffn));
  }
}

/** The marshallers, by name as on the command line (`--marshal`). */
export const MARSHALLER_NAMES = [
  "protobufList",
  "protoJson",
  "protoText",
  "msgpack",
  "jsonl",
  "humanize",
  "csv",
  "tsv",
] as const;

/** A marshaller's name. */
export type MarshallerName = (typeof MARSHALLER_NAMES)[number];

/** Whether `name` is a marshaller's name. */
export function isMarshallerName(name: string): name is MarshallerName {
  return (MARSHALLER_NAMES as readonly string[]).includes(name);
}

const MARSHALLERS: Record<MarshallerName, (columns: string) => Marshaller> = {
  protobufList: () => ({
    name: "protobufList",
    contentType: "application/octet-stream",
    framing: "message",
    marshal: (env) => env.framed(),
  }),
  protoJson: () => ({
    name: "protoJson",
    contentType: "application/json",
    framing: "message",
    marshal: (env) =>
      enc.encode(toJsonString(EnvelopeSchema, fromBinary(EnvelopeSchema, env.envelope())) + "\n"),
  }),
  protoText: () => ({
    name: "protoText",
    contentType: "text/plain; charset=utf-8",
    framing: "message",
    marshal: (env) =>
      enc.encode(decoded(env).map((r) => `row {\n${protoText(r, "  ")}}\n`).join("")),
  }),
  msgpack: () => ({
    name: "msgpack",
    contentType: "application/octet-stream",
    framing: "message",
    marshal: (env) => {
      const m = new MsgPack();
      const rs = decoded(env);
      m.map(1);
      m.str("row");
      m.array(rs.length);
      for (const r of rs) {
        const set = SPECS.filter((s) => {
          const v = value(r, s);
          return v !== undefined && v !== 0 && v !== 0n && v !== "" && v !== false &&
            !(v instanceof Uint8Array && v.length === 0);
        });
        m.map(set.length);
        for (const s of set) {
          m.str(s.json);
          const v = value(r, s);
          if (typeof v === "string") m.str(v);
          else if (v instanceof Uint8Array) m.bin(v);
          else if (typeof v === "boolean") m.bool(v);
          else if (s.type === "int64") m.int(v as bigint);
          else m.uint(v as number | bigint);
        }
      }
      return m.bytes();
    },
  }),
  jsonl: (columns) => rows("jsonl", "application/x-ndjson", columns),
  humanize: (columns) => rows("humanize", "application/x-ndjson", columns),
  csv: (columns) => rows("csv", "text/csv", columns),
  tsv: (columns) => rows("tsv", "text/tab-separated-values", columns),
};

/** The marshaller called `name` (validated by the config layer). */
export function marshaller(name: string, columns = ""): Marshaller {
  if (!isMarshallerName(name)) {
    throw new RangeError(
      `Unknown marshaller: ${name}: valid ones are ${MARSHALLER_NAMES.join(", ")}`,
    );
  }
  return MARSHALLERS[name](columns);
}
