/**
 * RTM_GETNSID over rtnetlink (NETLINK_ROUTE): the id the daemon's namespace gives another
 * namespace (`ip netns set NAME 42`; `ip -j netns list-id`), asked with the namespace's file
 * descriptor (NETNSA_FD). Pure: the request bytes and the reply's walk.
 *
 * @module
 */
import { NLM_F_REQUEST, NLMSG_ERROR, NLMSG_HDRLEN, RTA_HDRLEN } from "./constants.ts";

/** rtnetlink message types and attributes of net namespace ids (linux/net_namespace.h). */
export const RTM_NEWNSID = 88;
export const RTM_GETNSID = 90;
export const NETNSA_NSID = 1;
export const NETNSA_FD = 3;
/** Size of the RTM_GETNSID request: nlmsghdr, rtgenmsg (4), one u32 attribute (8). */
export const GETNSID_REQUEST_LEN = NLMSG_HDRLEN + 4 + RTA_HDRLEN + 4;

/**
 * Writes the RTM_GETNSID request for the namespace open as `fd` into `out`; returns its length.
 *
 * @example
 * ```ts
 * const req = new Uint8Array(GETNSID_REQUEST_LEN);
 * writeGetNsidRequest(req, fd, 1);
 * ```
 */
export function writeGetNsidRequest(out: Uint8Array, fd: number, seq: number): number {
  out.fill(0, 0, GETNSID_REQUEST_LEN);
  const dv = new DataView(out.buffer, out.byteOffset, GETNSID_REQUEST_LEN);
  dv.setUint32(0, GETNSID_REQUEST_LEN, true);
  dv.setUint16(4, RTM_GETNSID, true);
  dv.setUint16(6, NLM_F_REQUEST, true);
  dv.setUint32(8, seq >>> 0, true);
  // rtgenmsg { rtgen_family = AF_UNSPEC } and 3 bytes of padding at 16, then the attribute.
  dv.setUint16(20, RTA_HDRLEN + 4, true);
  dv.setUint16(22, NETNSA_FD, true);
  dv.setUint32(24, fd >>> 0, true);
  return GETNSID_REQUEST_LEN;
}

/** The answer to RTM_GETNSID. */
export type NsidReply =
  /** The id (-1: none assigned). */
  | { nsid: number }
  /** NLMSG_ERROR: the positive errno. */
  | { errno: number };

/**
 * Reads the reply to RTM_GETNSID in `b[0, n)`: the NETNSA_NSID of RTM_NEWNSID, or the errno of
 * NLMSG_ERROR; undefined when the datagram is neither.
 */
export function parseNsidReply(b: Uint8Array, n: number): NsidReply | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, n);
  if (n < NLMSG_HDRLEN + 4) return undefined;
  const type = dv.getUint16(4, true);
  if (type === NLMSG_ERROR) return { errno: -dv.getInt32(NLMSG_HDRLEN, true) };
  if (type !== RTM_NEWNSID) return undefined;
  const end = Math.min(n, dv.getUint32(0, true));
  for (let at = NLMSG_HDRLEN + 4; at + RTA_HDRLEN <= end;) {
    const len = dv.getUint16(at, true);
    if (len < RTA_HDRLEN) break;
    if (dv.getUint16(at + 2, true) === NETNSA_NSID && len >= RTA_HDRLEN + 4) {
      return { nsid: dv.getInt32(at + RTA_HDRLEN, true) };
    }
    at += (len + 3) & ~3;
  }
  return undefined;
}
