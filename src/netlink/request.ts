/**
 * The inet_diag dump requests: `nlmsghdr` + `inet_diag_req_v2` (72 bytes, one address family
 * per dump), and the compat `nlmsghdr` + `inet_diag_req` (76 bytes, both families in one walk);
 * either followed, with a filter, by its INET_DIAG_REQ_BYTECODE attribute (the kernel reads it
 * after both request structs and audits it before the dump starts).
 *
 * @module
 */
import {
  ALL_TCP_STATES,
  COMPAT_REQUEST_LEN,
  DUMP_REQUEST_LEN,
  INET_DIAG_REQ_BYTECODE,
  IPPROTO_TCP,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  SOCK_DIAG_BY_FAMILY,
  TCPDIAG_GETSOCK,
} from "./constants.ts";

/** Fields of a dump request. */
export interface DumpRequest {
  /** AF_INET (2) or AF_INET6 (10). */
  family: number;
  /** `idiag_ext` bitmask of extensions asked for. */
  ext: number;
  /** nlmsg_seq. */
  seq: number;
  /** `idiag_states` bitmask; defaults to every TCP state. */
  states?: number;
  /** Filter bytecode (see filter.ts), sent as the INET_DIAG_REQ_BYTECODE attribute. */
  bytecode?: ArrayLike<number>;
}

/** Bytes a request takes beyond its struct for `bytecode` (its attribute; 0 without). */
export function bytecodeAttrLen(bytecode: ArrayLike<number> | undefined): number {
  if (bytecode === undefined) return 0;
  if (bytecode.length === 0 || bytecode.length % 4 !== 0 || bytecode.length > 0xffff - 4) {
    throw new RangeError(
      `Filter bytecode must be a non-empty multiple of 4 bytes below 64 KiB: got ${bytecode.length}`,
    );
  }
  return 4 + bytecode.length;
}

/**
 * Writes a TCP dump request into `out` at `offset` (no allocation) and returns its length: 72
 * bytes, plus the bytecode attribute with a filter.
 *
 * @example
 * ```ts
 * const buf = new Uint8Array(72);
 * writeDumpRequest(buf, 0, { family: 2, ext: 0xfe, seq: 666 });
 * ```
 */
export function writeDumpRequest(out: Uint8Array, offset: number, req: DumpRequest): number {
  const dv = dumpHeader(out, offset, DUMP_REQUEST_LEN, SOCK_DIAG_BY_FAMILY, req);
  dv.setUint8(16, req.family);
  dv.setUint8(17, IPPROTO_TCP);
  dv.setUint8(18, req.ext & 0xff);
  dv.setUint32(20, (req.states ?? ALL_TCP_STATES) >>> 0, true);
  return dv.byteLength;
}

/**
 * Zeroes the request's bytes (a `structLen`-byte request and its bytecode attribute) in `out` at
 * `offset`, writes its nlmsghdr and the attribute there; returns a view of the request's bytes.
 */
function dumpHeader(
  out: Uint8Array,
  offset: number,
  structLen: number,
  type: number,
  req: DumpRequest,
) {
  const len = structLen + bytecodeAttrLen(req.bytecode);
  if (out.length - offset < len) {
    throw new RangeError(`Dump request needs ${len} bytes: ${out.length - offset} left`);
  }
  out.fill(0, offset, offset + len);
  const dv = new DataView(out.buffer, out.byteOffset + offset, len);
  dv.setUint32(0, len, true); // nlmsg_len
  dv.setUint16(4, type, true); // nlmsg_type
  dv.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true); // nlmsg_flags
  dv.setUint32(8, req.seq >>> 0, true); // nlmsg_seq; nlmsg_pid (12) stays 0: to the kernel
  if (req.bytecode !== undefined) {
    dv.setUint16(structLen, len - structLen, true); // rta_len
    dv.setUint16(structLen + 2, INET_DIAG_REQ_BYTECODE, true); // rta_type
    out.set(req.bytecode, offset + structLen + 4);
  }
  return dv;
}

/**
 * Writes a compat TCP dump request (`TCPDIAG_GETSOCK`, `struct inet_diag_req`: 76 bytes, plus
 * the bytecode attribute with a filter) into `out` at `offset` and returns its length. With `family` AF_UNSPEC (0) the kernel dumps IPv4 and
 * IPv6 from one walk of its TCP hash tables, where the v2 request needs one dump per family.
 *
 * @example
 * ```ts
 * const buf = new Uint8Array(76);
 * writeCompatDumpRequest(buf, 0, { family: 0, ext: 0xfe, seq: 666 });
 * ```
 */
export function writeCompatDumpRequest(out: Uint8Array, offset: number, req: DumpRequest): number {
  const dv = dumpHeader(out, offset, COMPAT_REQUEST_LEN, TCPDIAG_GETSOCK, req);
  dv.setUint8(16, req.family); // idiag_family
  dv.setUint8(19, req.ext & 0xff); // idiag_ext (after idiag_src_len, idiag_dst_len)
  // id (struct inet_diag_sockid, 48 bytes at 20) stays zero: no socket filter
  dv.setUint32(68, (req.states ?? ALL_TCP_STATES) >>> 0, true); // idiag_states
  return dv.byteLength; // idiag_dbs (72) stays zero
}
