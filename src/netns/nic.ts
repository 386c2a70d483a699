/**
 * NIC facts of the uplink interfaces (`-enrichNic`): driver, PCI vendor and device, model name,
 * bus info, speed and firmware version, read from sysfs through libc (Deno refuses `/sys` and
 * `/proc` reads without --allow-all) and from ETHTOOL_GDRVINFO (what `ethtool -i` prints); the
 * model name from the pci.ids database when one is installed. And which interfaces are the
 * uplinks: those named, else those of the default routes, else the first physical ones.
 *
 * @module
 */
import { posix } from "node:path";
import { drvInfo } from "../../ffi/ethtool.ts";
import { listDir, readSmallFile, sysReadlink } from "../../ffi/libc.ts";

/** What is known of one interface; absent where sysfs and the driver say nothing. */
export interface NicFacts {
  ifname: string;
  driver?: string;
  model?: string;
  pciVendor?: number;
  pciDevice?: number;
  busInfo?: string;
  speedMbps?: number;
  fwVersion?: string;
}

/** Where to read. */
export interface NicOptions {
  /** sysfs root; default `/sys`. */
  sys?: string;
  /** procfs root; default `/proc`. */
  proc?: string;
  /** pci.ids files tried in turn; default Debian's and hwdata's. */
  pciIds?: readonly string[];
}

const PCI_IDS = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

function tryRead(path: string): string | undefined {
  try {
    return readSmallFile(path).trim();
  } catch {
    return undefined; // absent, or EINVAL (speed of an interface that is down)
  }
}

function tryLink(path: string): string | undefined {
  try {
    return sysReadlink(path);
  } catch {
    return undefined;
  }
}

/** The PCI function a device sits on: itself or its nearest ancestor whose subsystem is pci. */
function pciAncestor(sys: string, device: string): string | undefined {
  for (let p = device; p.startsWith(`${sys}/devices/`); p = posix.dirname(p)) {
    const sub = tryLink(`${p}/subsystem`);
    if (sub !== undefined && posix.basename(sub) === "pci") return p;
  }
  return undefined;
}

function hex(s: string | undefined): number | undefined {
  if (s === undefined || !/^0x[0-9a-f]+$/i.test(s)) return undefined;
  return Number.parseInt(s, 16);
}

const modelCache = new Map<string, string | undefined>();

/**
 * The device's name in pci.ids (`1af4` `1041` → "Virtio 1.0 network device"), or undefined
 * when no database is installed or it does not list the device.
 */
export function pciModel(
  vendor: number,
  device: number,
  files: readonly string[] = PCI_IDS,
): string | undefined {
  const v = vendor.toString(16).padStart(4, "0");
  const d = device.toString(16).padStart(4, "0");
  const key = `${files.join(":")}|${v}:${d}`;
  if (modelCache.has(key)) return modelCache.get(key);
  let model: string | undefined;
  for (const file of files) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    // A vendor line (`1af4  Red Hat, Inc.`), then its devices (`\t1041  Virtio …`).
    const start = text.search(new RegExp(`^${v}  `, "m"));
    if (start >= 0) {
      const rest = text.slice(start);
      const next = rest.slice(1).search(/^[0-9a-f]{4} {2}/m);
      const block = next < 0 ? rest : rest.slice(0, next + 1);
      model = new RegExp(`^\\t${d}  (.+)$`, "m").exec(block)?.[1];
    }
    break;
  }
  modelCache.set(key, model);
  return model;
}

/**
 * The facts of `ifname` in the calling thread's namespace; throws when sysfs has no such
 * interface. What one source cannot say is left out.
 *
 * @example
 * ```ts
 * nicFacts("eth0"); // { ifname: "eth0", driver: "virtio_net", pciVendor: 0x1af4, … }
 * ```
 */
export function nicFacts(ifname: string, opts: NicOptions = {}): NicFacts {
  const sys = opts.sys ?? "/sys";
  const classDir = `${sys}/class/net`;
  const link = sysReadlink(`${classDir}/${ifname}`); // throws ENOENT: no such interface
  const netDir = posix.resolve(classDir, link);
  const facts: NicFacts = { ifname };
  const devLink = tryLink(`${netDir}/device`);
  const device = devLink === undefined ? undefined : posix.resolve(netDir, devLink);
  if (device !== undefined) {
    const drv = tryLink(`${device}/driver`);
    if (drv !== undefined) facts.driver = posix.basename(drv);
    const pci = pciAncestor(sys, device);
    if (pci !== undefined) {
      const vendor = hex(tryRead(`${pci}/vendor`));
      const dev = hex(tryRead(`${pci}/device`));
      if (vendor !== undefined) facts.pciVendor = vendor;
      if (dev !== undefined) facts.pciDevice = dev;
      if (vendor !== undefined && dev !== undefined) {
        const model = pciModel(vendor, dev, opts.pciIds);
        if (model !== undefined) facts.model = model;
      }
      facts.busInfo = posix.basename(pci);
    }
  }
  const speed = Number(tryRead(`${netDir}/speed`));
  if (Number.isInteger(speed) && speed > 0) facts.speedMbps = speed;
  try {
    const info = drvInfo(ifname);
    if (facts.driver === undefined && info.driver) facts.driver = info.driver;
    if (info.busInfo) facts.busInfo = info.busInfo;
    if (info.fwVersion) facts.fwVersion = info.fwVersion;
  } catch {
    // No ethtool operations (lo), or the interface lives in another namespace: sysfs only.
  }
  return facts;
}

/** Interfaces of the IPv4 and IPv6 default routes of the calling thread's namespace, in order. */
export function defaultRouteInterfaces(proc = "/proc"): string[] {
  const out: string[] = [];
  const add = (i: string | undefined) => {
    if (i && i !== "lo" && !out.includes(i)) out.push(i);
  };
  // Iface Destination Gateway Flags RefCnt Use Metric Mask …
  for (const line of (tryRead(`${proc}/net/route`) ?? "").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === "00000000" && f[7] === "00000000") add(f[0]);
  }
  // dest plen src splen nexthop metric refcnt use flags iface
  for (const line of (tryRead(`${proc}/net/ipv6_route`) ?? "").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && /^0{32}$/.test(f[0] ?? "") && f[1] === "00") add(f[9]);
  }
  return out;
}

/** Interfaces with a device behind them (not virtual), sorted by name. */
export function physicalInterfaces(sys = "/sys"): string[] {
  let names: string[];
  try {
    names = listDir(`${sys}/class/net`);
  } catch {
    return [];
  }
  return names.filter((n) => tryLink(`${sys}/class/net/${n}/device`) !== undefined).sort();
}

/**
 * The uplinks: `named` if any, else the default-route interfaces, else the physical ones; at
 * most `count`.
 */
export function selectUplinks(
  named: readonly string[],
  count: number,
  opts: NicOptions = {},
): string[] {
  const pick = named.length ? [...named] : (() => {
    const routes = defaultRouteInterfaces(opts.proc);
    return routes.length ? routes : physicalInterfaces(opts.sys);
  })();
  return pick.slice(0, Math.max(0, count));
}
