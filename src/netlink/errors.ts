/**
 * Errors of the pure netlink layer. They carry where the problem is, so a damaged capture or a
 * misbehaving kernel reply can be found again.
 *
 * @module
 */
import { ENOENT, missingDiagModulesHint } from "./diag_modules.ts";

/** Malformed bytes: a netlink header, message or capture that cannot be walked. */
export class DecodeError extends Error {
  /**
   * @param reason what is wrong, in sentence case
   * @param offset byte offset of the problem within `source`
   * @param source where the bytes came from (a file name, "datagram", …)
   */
  constructor(readonly reason: string, readonly offset: number, readonly source = "datagram") {
    super(`${reason}: ${source} at offset ${offset}`);
    this.name = "DecodeError";
  }
}

/**
 * The kernel answered a request with an error (NLMSG_ERROR, or a negative status in NLMSG_DONE).
 * ENOENT, the answer of a kernel without its inet_diag and tcp_diag modules, names them and how
 * to load them.
 */
export class NetlinkError extends Error {
  /**
   * @param errno positive errno value
   * @param code symbolic name, e.g. `EPERM`
   * @param where "NLMSG_ERROR" or "NLMSG_DONE"
   */
  constructor(readonly errno: number, readonly code: string, readonly where: string) {
    super(
      `Kernel answered the dump with ${where}: ${code} (errno ${errno})` +
        (errno === ENOENT ? `: ${missingDiagModulesHint()}` : ""),
    );
    this.name = "NetlinkError";
  }
}

/** A reply datagram was larger than the receive buffer (MSG_TRUNC): data was lost. */
export class TruncatedDatagramError extends Error {
  /** @param bufferSize the receive buffer size that was too small */
  constructor(readonly bufferSize: number) {
    super(
      `Netlink datagram truncated to the ${bufferSize}-byte receive buffer: raise --packetSize/--packetSizeMply`,
    );
    this.name = "TruncatedDatagramError";
  }
}
