/**
 * The inet_diag dump requests: `nlmsghdr` + `inet_diag_req_v2` (72 bytes, one address family
 * per dump), and the compat `nlmsghdr` + `inet_diag_req` (76 bytes, both families in one walk).
 *
 * @module
 */
import {
  ALL_TCP_STATES,
  COMPAT_REQUEST_LEN,
  DUMP_REQUEST_LEN,
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
}

/**
 * Writes a 72-byte TCP dump request into `out` at `offset` (no allocation) and returns its length.
 *
 * @example
 * ```ts
 * const buf = new Uint8Array(72);
 * writeDumpRequest(buf, 0, { family: 2, ext: 0xfe, seq: 666 });
 * ```
 */
export function writeDumpRequest(out: Uint8Array, offset: number, req: DumpRequest): number {
  if (out.length - offset < DUMP_REQUEST_LEN) {
    throw new RangeError(
      `Dump request needs ${DUMP_REQUEST_LEN} bytes: ${out.length - offset} left`,
    );
  }
  out.fill(0, offset, offset + DUMP_REQUEST_LEN);
  const dv = new DataView(out.buffer, out.byteOffset + offset, DUMP_REQUEST_LEN);
  dv.setUint32(0, DUMP_REQUEST_LEN, true);
  dv.setUint16(4, SOCK_DIAG_BY_FAMILY, true);
  dv.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true);
  dv.setUint32(8, req.seq >>> 0, true);
  dv.setUint32(12, 0, true);
  dv.setUint8(16, req.family);
  dv.setUint8(17, IPPROTO_TCP);
  dv.setUint8(18, req.ext & 0xff);
  dv.setUint32(20, (req.states ?? ALL_TCP_STATES) >>> 0, true);
  return DUMP_REQUEST_LEN;
}

/**
 * Writes a 76-byte compat TCP dump request (`TCPDIAG_GETSOCK`, `struct inet_diag_req`) into
 * `out` at `offset` and returns its length. With `family` AF_UNSPEC (0) the kernel dumps IPv4 and
 * IPv6 from one walk of its TCP hash tables, where the v2 request needs one dump per family.
 *
 * @example
 * ```ts
 * const buf = new Uint8Array(76);
 * writeCompatDumpRequest(buf, 0, { family: 0, ext: 0xfe, seq: 666 });
 * ```
 */
export function writeCompatDumpRequest(out: Uint8Array, offset: number, req: DumpRequest): number {
  if (out.length - offset < COMPAT_REQUEST_LEN) {
    throw new RangeError(
      `Compat dump request needs ${COMPAT_REQUEST_LEN} bytes: ${out.length - offset} left`,
    );
  }
  out.fill(0, offset, offset + COMPAT_REQUEST_LEN);
  const dv = new DataView(out.buffer, out.byteOffset + offset, COMPAT_REQUEST_LEN);
  dv.setUint32(0, COMPAT_REQUEST_LEN, true);
  dv.setUint16(4, TCPDIAG_GETSOCK, true);
  dv.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true);
  dv.setUint32(8, req.seq >>> 0, true);
  dv.setUint32(12, 0, true);
  dv.setUint8(16, req.family); // idiag_family
  dv.setUint8(19, req.ext & 0xff); // idiag_ext (after idiag_src_len, idiag_dst_len)
  // id (struct inet_diag_sockid, 48 bytes at 20) stays zero: no socket filter
  dv.setUint32(68, (req.states ?? ALL_TCP_STATES) >>> 0, true); // idiag_states
  return COMPAT_REQUEST_LEN; // idiag_dbs (72) stays zero
}
