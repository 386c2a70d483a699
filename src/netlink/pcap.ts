/**
 * Classic libpcap files of netlink traffic (LINKTYPE_NETLINK = 253, as written by an `nlmon`
 * interface or by xtcp2 `--writeFiles`): each packet is a 16-byte cooked header followed by the
 * raw netlink datagram. Pure: bytes in, bytes out.
 *
 * @module
 */
import { DecodeError } from "./errors.ts";

/** Link type of netlink captures. */
export const LINKTYPE_NETLINK = 253;
/** Size of the cooked (SLL) header in front of each datagram. */
export const COOKED_HEADER_LEN = 16;
/** ARPHRD_NETLINK, the hardware type in the cooked header. */
export const ARPHRD_NETLINK = 824;
/** Cooked header packet type of a datagram the host sent (our request). */
export const PACKET_OUTGOING = 4;
/** Cooked header packet type of a datagram addressed to the host (the kernel's reply). */
export const PACKET_HOST = 0;
/** Netlink protocol number of sock_diag. */
export const NETLINK_SOCK_DIAG = 4;

const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;

/** One captured datagram. */
export interface PcapPacket {
  /** Packet number in the file, from 0. */
  index: number;
  /** File offset of the netlink datagram (after the cooked header). */
  offset: number;
  /** File offset where the datagram ends. */
  end: number;
  /** Netlink protocol (family) from the cooked header: 4 = sock_diag. */
  protocol: number;
  /** Cooked header packet type: {@link PACKET_OUTGOING} or {@link PACKET_HOST}. */
  packetType: number;
  /** Capture time, seconds. */
  tsSec: number;
  /** Capture time, sub-second part in microseconds (or nanoseconds for nanosecond files). */
  tsFrac: number;
}

/**
 * Iterates the netlink datagrams of a pcap file. Throws {@link DecodeError} naming `source` and the
 * file offset for a file that is not a netlink pcap or is cut short.
 *
 * @example
 * ```ts
 * for (const p of pcapPackets(await Deno.readFile("dump.pcap"), "dump.pcap")) console.log(p.offset);
 * ```
 */
export function* pcapPackets(bytes: Uint8Array, source: string): Generator<PcapPacket> {
  if (bytes.length < GLOBAL_HEADER_LEN) {
    throw new DecodeError(
      `Not a pcap file: ${bytes.length} bytes, shorter than the 24-byte header`,
      0,
      source,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else {
    throw new DecodeError(
      `Not a pcap file: bad magic 0x${magic.toString(16).padStart(8, "0")}`,
      0,
      source,
    );
  }
  const linktype = dv.getUint32(20, le) & 0x0fffffff;
  if (linktype !== LINKTYPE_NETLINK) {
    throw new DecodeError(
      `Not a netlink capture: link type ${linktype}, expected ${LINKTYPE_NETLINK}`,
      20,
      source,
    );
  }
  let off = GLOBAL_HEADER_LEN;
  let index = 0;
  while (off < bytes.length) {
    if (bytes.length - off < RECORD_HEADER_LEN) {
      throw new DecodeError(
        `Truncated pcap record header (${bytes.length - off} bytes left)`,
        off,
        source,
      );
    }
    const tsSec = dv.getUint32(off, le);
    const tsFrac = dv.getUint32(off + 4, le);
    const incl = dv.getUint32(off + 8, le);
    const orig = dv.getUint32(off + 12, le);
    const data = off + RECORD_HEADER_LEN;
    if (incl > bytes.length - data) {
      throw new DecodeError(
        `Truncated pcap packet ${index}: ${incl} bytes announced, ${bytes.length - data} left`,
        off,
        source,
      );
    }
    if (incl < orig) {
      throw new DecodeError(
        `Pcap packet ${index} was cut by the capture's snaplen (${incl} of ${orig} bytes)`,
        off,
        source,
      );
    }
    if (incl < COOKED_HEADER_LEN) {
      throw new DecodeError(
        `Pcap packet ${index} is shorter than the 16-byte netlink cooked header`,
        off,
        source,
      );
    }
    yield {
      index,
      offset: data + COOKED_HEADER_LEN,
      end: data + incl,
      protocol: dv.getUint16(data + 14, false),
      packetType: dv.getUint16(data, false),
      tsSec,
      tsFrac,
    };
    off = data + incl;
    index++;
  }
}

/** The 24-byte global header of a little-endian microsecond netlink pcap. */
export function pcapFileHeader(snaplen = 262144): Uint8Array {
  const b = new Uint8Array(GLOBAL_HEADER_LEN);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 0xa1b2c3d4, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setUint32(16, snaplen, true);
  dv.setUint32(20, LINKTYPE_NETLINK, true);
  return b;
}

/**
 * One pcap record (record header + cooked header + datagram) for `data`, sent by us when
 * `outgoing`, else received from the kernel.
 */
export function pcapRecord(
  data: Uint8Array,
  outgoing: boolean,
  timeMs: number,
  protocol = NETLINK_SOCK_DIAG,
): Uint8Array {
  const len = COOKED_HEADER_LEN + data.length;
  const b = new Uint8Array(RECORD_HEADER_LEN + len);
  const dv = new DataView(b.buffer);
  const sec = Math.floor(timeMs / 1000);
  dv.setUint32(0, sec, true);
  dv.setUint32(4, Math.floor((timeMs - sec * 1000) * 1000), true);
  dv.setUint32(8, len, true);
  dv.setUint32(12, len, true);
  dv.setUint16(16, outgoing ? PACKET_OUTGOING : PACKET_HOST, false);
  dv.setUint16(18, ARPHRD_NETLINK, false);
  dv.setUint16(30, protocol, false);
  b.set(data, RECORD_HEADER_LEN + COOKED_HEADER_LEN);
  return b;
}
