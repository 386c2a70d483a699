/**
 * Builds synthetic inet_diag reply datagrams for edge cases the captures do not hold.
 *
 * @module
 */
import { INET_DIAG_INFO } from "../../src/netlink/constants.ts";
import { parseDatagram, ParseStats } from "../../src/netlink/parse.ts";
import { SocketView } from "../../src/netlink/socket_view.ts";

/**
 * Parses all of datagram `dg` (every attribute type wanted, any seq and port id), calling
 * `onSocket` for each socket with `view` on it; returns parseDatagram's status bits.
 */
export function parseAll(
  dg: Uint8Array,
  onSocket: (v: SocketView) => void,
  view = new SocketView(),
  stats = new ParseStats(),
): number {
  const dv = new DataView(dg.buffer, dg.byteOffset, dg.length);
  const opts = { mask: -1, expectSeq: -1, expectPid: -1 };
  return parseDatagram(view, dg, dv, 0, dg.length, opts, stats, onSocket);
}

/** One synthetic socket message. */
export interface SynthSocket {
  /** inet_diag_msg bytes (72); default: IPv4 ESTABLISHED 127.0.0.1:1 → 127.0.0.1:2. */
  header?: Uint8Array;
  /** Attributes as [type, payload]. */
  attrs?: [number, Uint8Array][];
  /** nlmsg_flags (default NLM_F_MULTI). */
  flags?: number;
}

/** A datagram of SOCK_DIAG_BY_FAMILY messages, then NLMSG_DONE when `done`. */
export function buildDatagram(sockets: SynthSocket[], done = false, seq = 1, pid = 0): Uint8Array {
  const parts: number[] = [];
  const push32 = (v: number) => parts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  for (const s of sockets) {
    const header = s.header ?? defaultHeader();
    const attrBytes: number[] = [];
    for (const [type, payload] of s.attrs ?? []) {
      const len = 4 + payload.length;
      attrBytes.push(len & 0xff, len >>> 8, type & 0xff, type >>> 8, ...payload);
      while (attrBytes.length % 4) attrBytes.push(0);
    }
    const len = 16 + header.length + attrBytes.length;
    push32(len);
    parts.push(20, 0, (s.flags ?? 2) & 0xff, (s.flags ?? 2) >>> 8);
    push32(seq);
    push32(pid);
    parts.push(...header, ...attrBytes);
  }
  if (done) {
    push32(20);
    parts.push(3, 0, 2, 0);
    push32(seq);
    push32(pid);
    push32(0);
  }
  const out = new Uint8Array(new ArrayBuffer(parts.length));
  out.set(parts);
  return out;
}

/** A 72-byte inet_diag_msg for an established IPv4 loopback socket. */
export function defaultHeader(): Uint8Array {
  const h = new Uint8Array(72);
  h[0] = 2;
  h[1] = 1;
  h[4] = 0;
  h[5] = 1;
  h[6] = 0;
  h[7] = 2;
  h.set([127, 0, 0, 1], 8);
  h.set([127, 0, 0, 1], 24);
  h[68] = 42;
  return h;
}

/** Length of the synthetic tcp_info of {@link socketView}. */
const TCP_INFO_LEN = 248;

/**
 * A view of one established IPv4 socket with cookie `cookie` and inode `inode`: its header and a
 * zeroed tcp_info (at 72) in a buffer of their own, to change byte by byte.
 */
export function socketView(cookie: number, inode = 0): SocketView {
  const u8 = new Uint8Array(72 + TCP_INFO_LEN);
  const v = new SocketView();
  v.u8 = u8;
  v.dv = new DataView(u8.buffer);
  v.msg = 0;
  u8[0] = 2;
  u8[1] = 1; // established
  v.dv.setUint32(44, cookie, true);
  v.dv.setUint32(68, inode, true);
  v.attrOff[INET_DIAG_INFO] = 72;
  v.attrLen[INET_DIAG_INFO] = TCP_INFO_LEN;
  return v;
}
