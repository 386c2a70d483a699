/**
 * ETHTOOL_GDRVINFO (what `ethtool -i IFACE` prints): driver, firmware version and bus info of a
 * network interface of the calling thread's namespace, through the SIOCETHTOOL ioctl on a
 * throw-away AF_INET datagram socket.
 *
 * @module
 */
import { AF_INET } from "../src/netlink/constants.ts";
import { addressOf, SOCK_CLOEXEC, SOCK_DGRAM, sysClose, sysIoctl, sysSocket } from "./libc.ts";

const SIOCETHTOOL = 0x8946;
const ETHTOOL_GDRVINFO = 3;
/** sizeof(struct ifreq): ifr_name[16], then the union (ifr_data, a pointer, at 16). */
const IFREQ_LEN = 40;
const IFNAMSIZ = 16;
/** sizeof(struct ethtool_drvinfo): cmd, five 32-byte strings, reserved2[12], five u32. */
const DRVINFO_LEN = 196;
const DRIVER_AT = 4;
const VERSION_AT = 36;
const FW_AT = 68;
const BUS_AT = 100;
const STR_LEN = 32;

/** What ETHTOOL_GDRVINFO says of an interface (empty strings where the driver says nothing). */
export interface DrvInfo {
  driver: string;
  version: string;
  fwVersion: string;
  busInfo: string;
}

const dec = new TextDecoder();

function cString(b: Uint8Array, at: number): string {
  const s = b.subarray(at, at + STR_LEN);
  const end = s.indexOf(0);
  return dec.decode(end < 0 ? s : s.subarray(0, end));
}

/**
 * ETHTOOL_GDRVINFO of `ifname`; throws OsError (ENODEV: no such interface here; EOPNOTSUPP: the
 * driver has no ethtool operations).
 *
 * @example
 * ```ts
 * drvInfo("eth0").driver; // "virtio_net"
 * ```
 */
export function drvInfo(ifname: string): DrvInfo {
  const name = new TextEncoder().encode(ifname);
  if (name.length >= IFNAMSIZ) throw new RangeError(`Interface name too long: ${ifname}`);
  const info = new Uint8Array(new ArrayBuffer(DRVINFO_LEN));
  new DataView(info.buffer).setUint32(0, ETHTOOL_GDRVINFO, true);
  const ifr = new Uint8Array(new ArrayBuffer(IFREQ_LEN));
  ifr.set(name);
  new DataView(ifr.buffer).setBigUint64(IFNAMSIZ, addressOf(info), true);
  const fd = sysSocket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  try {
    sysIoctl(fd, SIOCETHTOOL, ifr, ifname);
  } finally {
    sysClose(fd);
  }
  return {
    driver: cString(info, DRIVER_AT),
    version: cString(info, VERSION_AT),
    fwVersion: cString(info, FW_AT),
    busInfo: cString(info, BUS_AT),
  };
}
