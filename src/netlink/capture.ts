/**
 * Decoding a whole netlink capture: every sock_diag reply datagram of a pcap, other netlink
 * families and our own requests skipped.
 *
 * @module
 */
import { NetlinkError } from "./errors.ts";
import { parseDatagram, type ParseOptions, ParseStats } from "./parse.ts";
import { NETLINK_SOCK_DIAG, pcapPackets } from "./pcap.ts";
import { SocketView } from "./socket_view.ts";

/** Summary of a decoded capture. */
export interface CaptureSummary {
  /** Packets in the file. */
  packets: number;
  /** Packets of the sock_diag family. */
  sockDiagPackets: number;
  /** Kernel errors found in replies (NLMSG_ERROR, failed NLMSG_DONE), counted, not fatal. */
  kernelErrors: NetlinkError[];
  /** Parse counters. */
  stats: ParseStats;
}

/**
 * Calls `onSocket` for every inet_diag socket message in the capture `bytes`. Throws
 * DecodeError (with `source` and the file offset) on damaged input.
 *
 * @example
 * ```ts
 * let n = 0;
 * decodeCapture(await Deno.readFile("x.pcap"), "x.pcap", 0xffffffff, () => n++);
 * ```
 */
export function decodeCapture(
  bytes: Uint8Array,
  source: string,
  mask: number,
  onSocket: (view: SocketView) => void,
  view: SocketView = new SocketView(),
): CaptureSummary {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stats = new ParseStats();
  const opts: ParseOptions = { mask, expectSeq: -1, expectPid: -1, source };
  const summary: CaptureSummary = { packets: 0, sockDiagPackets: 0, kernelErrors: [], stats };
  for (const p of pcapPackets(bytes, source)) {
    summary.packets++;
    if (p.protocol !== NETLINK_SOCK_DIAG) continue;
    summary.sockDiagPackets++;
    try {
      parseDatagram(view, bytes, dv, p.offset, p.end, opts, stats, onSocket);
    } catch (err) {
      if (!(err instanceof NetlinkError)) throw err;
      summary.kernelErrors.push(err);
    }
  }
  return summary;
}
