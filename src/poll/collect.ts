/**
 * One collection of one network namespace: open (or reuse) its inet_diag socket, dump IPv4 and
 * IPv6, deliver the sockets to a sink.
 *
 * @module
 */
import { NetlinkSocket } from "../../ffi/netlink_socket.ts";
import { openNetlinkSocketIn } from "../../ffi/netns.ts";
import { Dumper, type DumperOptions, type DumpSink } from "../netlink/dump.ts";

/** Options of {@link collectOnce}. */
export interface CollectOptions extends DumperOptions {
  /** Namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`); default: the current namespace. */
  nsPath?: string;
  /** SO_RCVTIMEO of the netlink socket in ms (0 = none). */
  rcvTimeoutMs?: number;
}

/** Opens the inet_diag socket of `nsPath` (or of the current namespace). */
export function openDiagSocket(nsPath?: string, rcvTimeoutMs = 1000): NetlinkSocket {
  return nsPath === undefined
    ? NetlinkSocket.open({ rcvTimeoutMs })
    : openNetlinkSocketIn(nsPath, { rcvTimeoutMs });
}

/**
 * Dumps the namespace's TCP sockets into `sink` and returns how many there were.
 *
 * @example
 * ```ts
 * const sink = new JsonLinesSink(new Stamp({ netns: "default" }));
 * collectOnce({ mask: parseDeserializers("default"), ext: 0xfe }, sink);
 * ```
 */
export function collectOnce(opts: CollectOptions, sink: DumpSink): number {
  using sock = openDiagSocket(opts.nsPath, opts.rcvTimeoutMs);
  return new Dumper(opts).dump(sock, sink);
}
