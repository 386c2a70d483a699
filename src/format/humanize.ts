/**
 * Records as people read them, shared by the daemon's marshallers and `xtcp2client`: JSON lines
 * (`jsonl`, `humanize`) and csv/tsv rows of decoded `XtcpFlatRecord`s. `humanize` is the
 * original's: protojson with six fields rewritten — the two addresses as IP text, the two TCP
 * states by name, the congestion control by its short name (`CUBIC`, `BBR3`), `timestamp_ns` as
 * RFC 3339 UTC with nanoseconds. csv/tsv cells are humanised the same way.
 *
 * @module
 */
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import {
  type XtcpFlatRecord,
  XtcpFlatRecordSchema,
} from "../gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import {
  CONGESTION_ALGORITHM_NAMES,
  FIELD_BY_COLUMN,
  FIELDS,
  type FieldSpec,
} from "../record/fields.ts";
import { formatIp } from "../record/ip.ts";
import { base64 } from "../record/values.ts";
import { TCP_STATE_NAMES } from "../netlink/constants.ts";

/** The TCP state's name (1 ESTABLISHED … 12 NEW_SYN_RECV), other values as their number. */
export function tcpStateName(state: number): string {
  return state >= 1 && state <= 12 ? TCP_STATE_NAMES[state] : String(state);
}

/** The congestion control enum's short name (`CUBIC`, `BBR3`), or its number when unknown. */
export function congestionName(value: number): string {
  const name = CONGESTION_ALGORITHM_NAMES[value];
  return name === undefined ? String(value) : name.slice("CONGESTION_ALGORITHM_".length);
}

/**
 * Nanoseconds since the epoch as Go's RFC3339Nano in UTC (trailing zeros of the fraction
 * dropped, no fraction when it is 0); `""` for 0 and below.
 *
 * @example
 * ```ts
 * rfc3339Nano(1732000000123400000n); // "2024-11-19T07:06:40.1234Z"
 * ```
 */
export function rfc3339Nano(ns: bigint): string {
  if (ns <= 0n) return "";
  const seconds = new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  return `${seconds}${frac ? "." + frac : ""}Z`;
}

/** The value of field `s` of a decoded record. */
export function fieldValue(r: XtcpFlatRecord, s: FieldSpec): unknown {
  return Reflect.get(r, s.json) as unknown;
}

/** The humanised text of the six rewritten fields; undefined for every other field. */
function humanText(r: XtcpFlatRecord, s: FieldSpec, v: unknown): string | undefined {
  switch (s.name) {
    case "inet_diag_msg_socket_source":
    case "inet_diag_msg_socket_destination":
      return (v as Uint8Array).length ? formatIp(r.inetDiagMsgFamily, v as Uint8Array) : "";
    case "inet_diag_msg_state":
    case "tcp_info_state":
      return tcpStateName(v as number);
    case "congestion_algorithm_enum":
      return congestionName(v as number);
    case "timestamp_ns":
      return rfc3339Nano(v as bigint);
  }
  return undefined;
}

/** The proto names of the fields `humanize` rewrites (the others are jsonl's). */
export const HUMANIZED_FIELDS: readonly string[] = [
  "timestamp_ns",
  "inet_diag_msg_state",
  "inet_diag_msg_socket_source",
  "inet_diag_msg_socket_destination",
  "tcp_info_state",
  "congestion_algorithm_enum",
];

/** Their specs, as {@link humanText} knows them. */
const HUMANIZED: readonly FieldSpec[] = HUMANIZED_FIELDS.map((name) => FIELD_BY_COLUMN.get(name)!);

/** Text of a field for a csv/tsv cell: humanised, bytes base64, 64-bit integers decimal. */
export function cellText(r: XtcpFlatRecord, s: FieldSpec): string {
  const v = fieldValue(r, s);
  if (v === undefined) return "";
  const human = humanText(r, s, v);
  if (human !== undefined) return human;
  if (v instanceof Uint8Array) return base64(v);
  return String(v);
}

/** One record as protojson (proto field names, compact), without a newline. */
export function jsonLine(r: XtcpFlatRecord): string {
  return JSON.stringify(toJson(XtcpFlatRecordSchema, r, { useProtoFieldName: true }));
}

/** One record as the `humanize` marshaller writes it, without a newline. */
export function humanizedLine(r: XtcpFlatRecord): string {
  const o = toJson(XtcpFlatRecordSchema, r, { useProtoFieldName: true }) as JsonObject;
  for (const s of HUMANIZED) {
    if (s.name in o) o[s.name] = humanText(r, s, fieldValue(r, s)) ?? "";
  }
  return JSON.stringify(o);
}

/** The row formats: what the daemon marshals per record and what `xtcp2client` prints. */
export const ROW_FORMATS = ["jsonl", "humanize", "csv", "tsv"] as const;

/** A row format's name. */
export type RowFormat = (typeof ROW_FORMATS)[number];

/**
 * The fields named in `columns` (comma list of proto or lowerCamelCase names; empty = every
 * field), in that order. Throws a RangeError naming the first unknown column.
 */
export function columnSpecs(columns: string): FieldSpec[] {
  const wanted = columns.split(",").map((c) => c.trim()).filter((c) => c);
  if (!wanted.length) return [...FIELDS];
  return wanted.map((c) => {
    const spec = FIELD_BY_COLUMN.get(c);
    if (!spec) throw new RangeError(`Invalid value for --columns: "${c}": unknown column`);
    return spec;
  });
}

function csvQuote(text: string, sep: string): string {
  return text.includes(sep) || text.includes('"') || text.includes("\n") || text.includes("\r")
    ? `"${text.replaceAll('"', '""')}"`
    : text;
}

/**
 * A writer of records in `format`: each call returns the text of its records, one line each
 * (newline-terminated). csv/tsv write their header row (the column names as given, else the
 * lowerCamelCase names) before the first call's rows only, as the original does once per process.
 */
export function rowWriter(
  format: RowFormat,
  columns = "",
): (rows: readonly XtcpFlatRecord[]) => string {
  if (format === "jsonl" || format === "humanize") {
    const line = format === "jsonl" ? jsonLine : humanizedLine;
    return (rows) => {
      let out = "";
      for (const r of rows) out += line(r) + "\n";
      return out;
    };
  }
  const sep = format === "csv" ? "," : "\t";
  const cols = columnSpecs(columns);
  const names = columns.trim() ? columns.split(",").map((c) => c.trim()).filter((c) => c) : [];
  let header = (names.length ? names : cols.map((s) => s.json)).join(sep) + "\n";
  return (rows) => {
    let out = header;
    header = "";
    for (const r of rows) out += cols.map((s) => csvQuote(cellText(r, s), sep)).join(sep) + "\n";
    return out;
  };
}
