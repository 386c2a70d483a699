/**
 * Walks netlink datagrams of an inet_diag dump: `nlmsghdr` → `inet_diag_msg` → `rtattr`s, over a
 * DataView of the receive buffer, without allocating per message.
 *
 * Layering: this module only finds messages and attributes and validates their framing; the
 * record layer (`src/record/`) reads fields out of the located payloads.
 *
 * @module
 */
import {
  INET_DIAG_MSG_LEN,
  MAX_ATTR_TYPE,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  RTA_HDRLEN,
  SOCK_DIAG_BY_FAMILY,
  TCPDIAG_GETSOCK,
} from "./constants.ts";
import { DecodeError, NetlinkError } from "./errors.ts";
import { errnoName } from "../util/errno.ts";
import { SocketView } from "./socket_view.ts";

/**
 * Counters of what a parse met. Plain numbers: no allocation while counting. Skipped messages:
 * `requests` carry NLM_F_REQUEST (captured requests, not replies); `skippedType` are NOOP,
 * OVERRUN or unknown types; `seqMismatch` are late replies of an older dump; `pidMismatch` are
 * for another port id; `shortInetDiagMsg` are shorter than struct inet_diag_msg. Attributes:
 * `attrErrors` had a bad length (below 4, or past the message end: the rest of that message's
 * attributes are dropped); `attrShort` were shorter than their struct (the fields that do not
 * fit are left absent); `attrSkipped` no enabled decoder wants (or of an unknown type).
 */
export class ParseStats {
  /** Datagrams walked. */ datagrams = 0;
  /** Netlink messages walked (all types). */ messages = 0;
  /** inet_diag messages handed out as sockets. */ sockets = 0;
  /** Captured requests, skipped. */ requests = 0;
  /** Other message types, skipped by length. */ skippedType = 0;
  /** Replies of an older dump, skipped. */ seqMismatch = 0;
  /** Messages for another port id, skipped. */ pidMismatch = 0;
  /** Short inet_diag messages, skipped. */ shortInetDiagMsg = 0;
  /** Attributes with a bad length. */ attrErrors = 0;
  /** Attributes shorter than their struct. */ attrShort = 0;
  /** Attributes no decoder wants. */ attrSkipped = 0;
  /** Messages that carried NLM_F_DUMP_INTR. */ dumpIntr = 0;
  /** Bytes of the datagrams walked. */ bytes = 0;
  /** Datagrams ending inside a netlink header (thrown). */ truncatedHeader = 0;
  /** Messages whose nlmsg_len is below the header's 16 bytes (thrown). */ nlmsgLenTooSmall = 0;
  /** Messages whose nlmsg_len runs past the datagram (thrown). */ nlmsgLenOverflow = 0;
  /** Of `attrErrors`: rta_len below the attribute header's 4 bytes. */ attrLenTooSmall = 0;
  /** Of `attrErrors`: rta_len past the message end. */ attrLenOverflow = 0;
  /** Of `attrErrors`: 1–3 bytes left that cannot hold an attribute header. */ attrTruncatedHeader =
    0;

  /** Adds another stats object into this one. */
  add(o: ParseStats): void {
    for (const k of Object.keys(this) as (keyof ParseStats)[]) {
      const v = o[k];
      if (typeof v === "number") (this[k] as number) += v;
    }
  }
}

/** Nominal payload size of each attribute's struct; shorter payloads are counted in `attrShort`. */
export const NOMINAL_ATTR_LEN: Int32Array = (() => {
  const a = new Int32Array(MAX_ATTR_TYPE);
  a[1] = 16; // inet_diag_meminfo
  a[2] = 192; // tcp_info as of 4.15; newer kernels send more
  a[3] = 16; // tcpvegas_info
  a[4] = 1; // congestion control name
  a[5] = 1; // tos
  a[6] = 1; // tclass
  a[7] = 36; // u32[SK_MEMINFO_VARS = 9]
  a[8] = 1; // shutdown
  a[9] = 16; // tcp_dctcp_info
  a[16] = 20; // tcp_bbr_info
  a[17] = 4; // class id
  a[21] = 8; // cgroup id
  a[22] = 2; // sockopt bitfield
  return a;
})();

/** What to accept while parsing. */
export interface ParseOptions {
  /** Bitmask of attribute types to locate (bit N = type N); others are skipped. */
  mask: number;
  /** Expected nlmsg_seq, or -1 to accept any (captures). */
  expectSeq: number;
  /** Expected nlmsg_pid (our port id), or -1 to accept any (captures). */
  expectPid: number;
  /** Name of the byte source for error messages. */
  source?: string;
  /** Added to offsets in error messages (e.g. the datagram's offset in a capture file). */
  baseOffset?: number;
  /**
   * Only frame and count: no attribute is located and `onSocket` is not called (the pipelined
   * poll checks each datagram's status on the receiving thread, and a worker decodes it).
   */
  countOnly?: boolean;
}

/** Bit of {@link parseDatagram}'s result: NLMSG_DONE was seen. */
export const PARSE_DONE = 1;
/** Bit of {@link parseDatagram}'s result: a message carried NLM_F_DUMP_INTR. */
export const PARSE_INTR = 2;

/**
 * Decodes a run of plain socket messages of the view's datagram from `off` up to `end`, in
 * place of one `onSocket` call each (a sink's fast path: the poller writes them in one call of
 * its encoder). Returns the offset of the first message it leaves to {@link parseDatagram}
 * (`off` when it takes none). It sets `view.index` past the sockets it took and counts them in
 * `stats` (messages, sockets, attrShort, attrSkipped) as parseDatagram would have.
 */
export type SocketRun = (
  view: SocketView,
  off: number,
  end: number,
  opts: ParseOptions,
  stats: ParseStats,
) => number;

/**
 * Locates the attributes of one inet_diag message (payload `[start, end)` after the 72-byte
 * header) into `view`. Malformed attributes never throw: they are counted, and the ones that can
 * not be framed end the walk.
 */
export function locateAttributes(
  view: SocketView,
  dv: DataView,
  start: number,
  end: number,
  mask: number,
  stats: ParseStats,
): void {
  const attrOff = view.attrOff;
  const attrLen = view.attrLen;
  // Clear only what the last message set (cheaper than a fill of every type).
  for (let was = view.present; was !== 0; was &= was - 1) attrOff[31 - Math.clz32(was & -was)] = -1;
  let present = 0;
  let off = start;
  while (end - off >= RTA_HDRLEN) {
    const rlen = dv.getUint16(off, true);
    const type = dv.getUint16(off + 2, true) & 0x3fff; // drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (rlen < RTA_HDRLEN || rlen > end - off) {
      stats.attrErrors++;
      if (rlen < RTA_HDRLEN) stats.attrLenTooSmall++;
      else stats.attrLenOverflow++;
      view.present = present;
      return;
    }
    if (type < MAX_ATTR_TYPE && (mask & (1 << type)) !== 0) {
      const plen = rlen - RTA_HDRLEN;
      if (plen < NOMINAL_ATTR_LEN[type]) stats.attrShort++;
      attrOff[type] = off + RTA_HDRLEN;
      attrLen[type] = plen;
      present |= 1 << type;
    } else {
      stats.attrSkipped++;
    }
    off += (rlen + 3) & ~3;
  }
  view.present = present;
  if (off < end) {
    // 1–3 stray bytes that cannot hold an attribute header
    stats.attrErrors++;
    stats.attrTruncatedHeader++;
  }
}

/**
 * Walks one datagram `[start, end)` of `u8`/`dv` and calls `onSocket` for each inet_diag reply
 * message, with `view` pointing at it; `run`, if given, takes the runs of plain socket messages
 * it can (onSocket gets the rest). Returns a bitmask of {@link PARSE_DONE} and
 * {@link PARSE_INTR}. Parsing stops at NLMSG_DONE.
 *
 * Throws {@link DecodeError} when the netlink framing itself is broken, and {@link NetlinkError}
 * when the kernel reports an error.
 */
export function parseDatagram(
  view: SocketView,
  u8: Uint8Array,
  dv: DataView,
  start: number,
  end: number,
  opts: ParseOptions,
  stats: ParseStats,
  onSocket: (view: SocketView) => void,
  run?: SocketRun,
): number {
  stats.datagrams++;
  stats.bytes += end - start;
  view.u8 = u8;
  view.dv = dv;
  view.datagram++;
  view.end = end;
  let off = start;
  let index = 0;
  let status = 0;
  while (off < end) {
    if (run !== undefined && !opts.countOnly) {
      view.index = index;
      off = run(view, off, end, opts, stats);
      index = view.index;
      if (off >= end) break;
    }
    if (end - off < NLMSG_HDRLEN) {
      stats.truncatedHeader++;
      throw new DecodeError(
        `Truncated netlink header (${end - off} bytes left)`,
        (opts.baseOffset ?? 0) + off,
        opts.source,
      );
    }
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN || len > end - off) {
      if (len < NLMSG_HDRLEN) stats.nlmsgLenTooSmall++;
      else stats.nlmsgLenOverflow++;
      throw new DecodeError(
        `Bad nlmsg_len ${len} (${end - off} bytes left)`,
        (opts.baseOffset ?? 0) + off,
        opts.source,
      );
    }
    const type = dv.getUint16(off + 4, true);
    const flags = dv.getUint16(off + 6, true);
    const next = Math.min(end, off + ((len + 3) & ~3));
    stats.messages++;
    if ((flags & NLM_F_REQUEST) !== 0) {
      stats.requests++;
    } else if (opts.expectSeq >= 0 && dv.getUint32(off + 8, true) !== opts.expectSeq) {
      stats.seqMismatch++;
    } else if (opts.expectPid >= 0 && dv.getUint32(off + 12, true) !== opts.expectPid) {
      stats.pidMismatch++;
    } else {
      if ((flags & NLM_F_DUMP_INTR) !== 0) {
        stats.dumpIntr++;
        status |= PARSE_INTR;
      }
      if (type === SOCK_DIAG_BY_FAMILY || type === TCPDIAG_GETSOCK) {
        if (len < NLMSG_HDRLEN + INET_DIAG_MSG_LEN) {
          stats.shortInetDiagMsg++;
        } else {
          stats.sockets++;
          if (!opts.countOnly) {
            const msg = off + NLMSG_HDRLEN;
            view.msg = msg;
            view.index = index++;
            const locate = view.locate;
            const r = locate ? locate(msg + INET_DIAG_MSG_LEN, off + len, opts.mask) : 3;
            if ((r & 3) === 0) {
              stats.attrShort += (r >>> 2) & 0x3f;
              stats.attrSkipped += r >>> 8;
            } else {
              // No fast locator, or it met a bad attribute (rare): this one counts each kind.
              locateAttributes(view, dv, msg + INET_DIAG_MSG_LEN, off + len, opts.mask, stats);
            }
            onSocket(view);
          }
        }
      } else if (type === NLMSG_DONE) {
        if (len >= NLMSG_HDRLEN + 4) {
          const err = dv.getInt32(off + NLMSG_HDRLEN, true);
          if (err < 0) throw new NetlinkError(-err, errnoName(-err), "NLMSG_DONE");
        }
        return status | PARSE_DONE;
      } else if (type === NLMSG_ERROR) {
        if (len < NLMSG_HDRLEN + 4) {
          throw new DecodeError(
            "Truncated NLMSG_ERROR",
            (opts.baseOffset ?? 0) + off,
            opts.source,
          );
        }
        const err = dv.getInt32(off + NLMSG_HDRLEN, true);
        if (err < 0) throw new NetlinkError(-err, errnoName(-err), "NLMSG_ERROR");
        stats.skippedType++; // an ACK (error 0)
      } else {
        stats.skippedType++;
      }
    }
    off = next;
  }
  return status;
}
