/**
 * Field values of one socket as plain JavaScript values, read through the field table. This is
 * the obvious (allocating) path: JSON lines, the test oracle (`create` + `toBinary`), debugging.
 * The daemon's hot path uses {@link RecordEncoder} instead.
 *
 * @module
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type XtcpFlatRecord,
  XtcpFlatRecordSchema,
} from "../gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { INET_DIAG_MSG_LEN } from "../netlink/constants.ts";
import type { SocketView } from "../netlink/socket_view.ts";
import {
  CONGESTION_ALGORITHM_NAMES,
  congestionEnum,
  cstrLen,
  FIELDS,
  type FieldSpec,
  READ_ADDR16,
  READ_BE16,
  READ_BIT0,
  READ_BITS12,
  READ_CONG_ENUM,
  READ_CSTR,
  READ_NIB_HI,
  READ_NIB_LO,
  READ_U16,
  READ_U32,
  READ_U64,
  READ_U8,
  SRC_EXTRA,
  SRC_META,
  SRC_MSG,
} from "./fields.ts";
import type { RecordExtra } from "./extra.ts";
import type { Stamp, StampValue } from "./stamp.ts";

/** A decoded field value. 64-bit fields are bigint. */
export type FieldValue = number | bigint | string | Uint8Array;

/** A kernel name as printable ASCII; other bytes become `?` (as the fast encoder writes them). */
function asciiName(u8: Uint8Array, off: number, n: number): string {
  let s = "";
  for (let i = off; i < off + n; i++) {
    s += u8[i] >= 0x20 && u8[i] < 0x7f ? String.fromCharCode(u8[i]) : "?";
  }
  return s;
}

/**
 * The value of `spec` for the socket in `view`, or `undefined` when the kernel did not send it
 * (attribute absent, or too short to hold the field).
 */
export function kernelValue(view: SocketView, spec: FieldSpec): FieldValue | undefined {
  let base: number;
  let len: number;
  if (spec.src === SRC_MSG) {
    base = view.msg;
    len = INET_DIAG_MSG_LEN;
  } else {
    base = view.attrOff[spec.src];
    if (base < 0) return undefined;
    len = view.attrLen[spec.src];
  }
  if (spec.off + spec.width > len) return undefined;
  const at = base + spec.off;
  const u8 = view.u8;
  const dv = view.dv;
  switch (spec.read) {
    case READ_U8:
      return u8[at];
    case READ_U16:
      return dv.getUint16(at, true);
    case READ_U32:
      return dv.getUint32(at, true);
    case READ_U64:
      return dv.getBigUint64(at, true);
    case READ_BE16:
      return dv.getUint16(at, false);
    case READ_NIB_LO:
      return u8[at] & 0x0f;
    case READ_NIB_HI:
      return u8[at] >> 4;
    case READ_BIT0:
      return u8[at] & 1;
    case READ_BITS12:
      return (u8[at] >> 1) & 3;
    case READ_ADDR16:
      return u8.slice(at, at + 16);
    case READ_CSTR:
      return asciiName(u8, base, cstrLen(u8, base, base + len));
    case READ_CONG_ENUM:
      return congestionEnum(u8, base, base + len);
    default:
      throw new TypeError(`Field ${spec.name} has no kernel reader`);
  }
}

function metaValue(view: SocketView, stamp: Stamp, spec: FieldSpec): StampValue | undefined {
  if (spec.number === 60) return view.index;
  return stamp.values.get(spec.name);
}

/** A per-socket addition's value (`closed` as 0 or 1). */
function extraValue(extra: RecordExtra | undefined, spec: FieldSpec): FieldValue | undefined {
  if (!extra) return undefined;
  switch (spec.name) {
    case "socket_owner_pid":
      return extra.ownerPid;
    case "socket_owner_comm":
      return asciiName(extra.ownerComm, 0, extra.ownerComm.length);
    case "closed":
      return extra.closed ? 1 : 0;
  }
  throw new TypeError(`Field ${spec.name} is not a per-socket addition`);
}

/** Whether a value is the proto3 default (omitted on the wire unless the field is optional). */
function isDefault(v: FieldValue | undefined): boolean {
  return v === undefined || v === 0 || v === 0n || v === "" ||
    (v instanceof Uint8Array && v.length === 0);
}

/**
 * Every present field of the record for `view` as `[spec, value]` pairs, in field-number order.
 * Kernel fields are present when the kernel sent them, zeros included; metadata fields and the
 * per-socket additions of `extra` when they are not the default (`closed` is 1 when true).
 */
export function recordEntries(
  view: SocketView,
  stamp: Stamp,
  extra?: RecordExtra,
): [FieldSpec, FieldValue][] {
  const out: [FieldSpec, FieldValue][] = [];
  for (const spec of FIELDS) {
    const daemon = spec.src === SRC_META || spec.src === SRC_EXTRA;
    const v = spec.src === SRC_META
      ? metaValue(view, stamp, spec)
      : spec.src === SRC_EXTRA
      ? extraValue(extra, spec)
      : kernelValue(view, spec);
    if (daemon ? isDefault(v) : v === undefined) continue;
    out.push([spec, toFieldValue(spec, v as FieldValue)]);
  }
  return out;
}

function toFieldValue(spec: FieldSpec, v: FieldValue): FieldValue {
  if ((spec.type === "uint64" || spec.type === "int64") && typeof v === "number") {
    return BigInt(v);
  }
  return v;
}

/**
 * The record as a `@bufbuild/protobuf` message, built the obvious way (`create` with every field
 * value). Used as the oracle of the fast encoder.
 */
export function recordMessage(
  view: SocketView,
  stamp: Stamp,
  extra?: RecordExtra,
): XtcpFlatRecord {
  const init: Record<string, FieldValue | boolean> = {};
  for (const [spec, v] of recordEntries(view, stamp, extra)) {
    if (!spec.optional && isDefault(v)) continue;
    init[spec.json] = spec.type === "int64"
      ? BigInt.asIntN(64, v as bigint)
      : spec.type === "bool"
      ? v === 1
      : v;
  }
  return create(XtcpFlatRecordSchema, init as MessageInitShape<typeof XtcpFlatRecordSchema>);
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 (as protojson writes bytes). */
export function base64(b: Uint8Array): string {
  let s = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < b.length) {
    const n = (b[i] << 16) | ((i + 1 < b.length ? b[i + 1] : 0) << 8);
    s += B64[n >> 18] + B64[(n >> 12) & 63];
    s += i + 1 < b.length ? B64[(n >> 6) & 63] + "=" : "==";
  }
  return s;
}

/**
 * One JSON object (no newline) for the socket in `view`: keys are the snake_case proto names,
 * 64-bit values decimal strings, bytes base64, the enum its name. Fields the kernel did not send
 * are absent; kernel fields it sent are written even when 0.
 */
export function recordJson(view: SocketView, stamp: Stamp, extra?: RecordExtra): string {
  const parts: string[] = [];
  for (const [spec, v] of recordEntries(view, stamp, extra)) {
    let text: string;
    if (spec.type === "bool") text = v === 1 ? "true" : "false";
    else if (typeof v === "bigint") text = `"${spec.type === "int64" ? BigInt.asIntN(64, v) : v}"`;
    else if (typeof v === "string") text = JSON.stringify(v);
    else if (v instanceof Uint8Array) text = `"${base64(v)}"`;
    else if (spec.type === "enum") text = `"${CONGESTION_ALGORITHM_NAMES[v] ?? v}"`;
    else text = String(v);
    parts.push(`"${spec.name}":${text}`);
  }
  return `{${parts.join(",")}}`;
}
