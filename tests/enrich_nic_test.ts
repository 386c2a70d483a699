/**
 * `-enrichNic`: every record carries the uplinks' NIC facts, as `ethtool -i`, sysfs and pci.ids
 * say them (read here with other tools, nothing hard-coded): this VM's real NIC (the
 * default-route interface when none is named) and, named with `-uplinkInterfaces`, the two ends
 * of a veth pair in a test namespace (no PCI device behind them).
 */
import assert from "node:assert/strict";
import { onlyNamespaces } from "./support/delivery.ts";
import { output, pollOnceJsonl } from "./support/run.ts";

function run(cmd: string, ...args: string[]): Promise<string> {
  return output(cmd, args);
}

/** `ethtool -i IFACE` as key → value. */
async function ethtoolI(ifname: string, netns?: string): Promise<Map<string, string>> {
  const text = netns
    ? await run("ip", "netns", "exec", netns, "ethtool", "-i", ifname)
    : await run("ethtool", "-i", ifname);
  return new Map(
    text.split("\n").filter((l) => l.includes(":")).map((l) => {
      const at = l.indexOf(":");
      return [l.slice(0, at).trim(), l.slice(at + 1).trim()];
    }),
  );
}

/** The device's name in pci.ids, found with awk (not our parser). */
async function pciIdsModel(vendor: string, device: string): Promise<string> {
  const prog = `$0 ~ "^${vendor}  " {v=1; next} v && /^[0-9a-f]/ {exit} ` +
    `v && $0 ~ "^\\t${device}  " {sub("^\\t${device}  ", ""); print; exit}`;
  return (await run("awk", prog, "/usr/share/misc/pci.ids")).trim();
}

function readSys(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

const missing = ["/usr/sbin/ethtool", "/usr/share/misc/pci.ids"].filter((p) => {
  try {
    Deno.statSync(p);
    return false;
  } catch {
    return true;
  }
});
if (missing.length) {
  console.warn(
    `SKIP enrich_nic_test: ${missing.join(", ")} absent (apt-get install ethtool pci.ids)`,
  );
}

Deno.test({
  name: "-enrichNic: the default-route NIC's driver, PCI ids, model, bus as ethtool and sysfs say",
  ignore: missing.length > 0,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const routes = JSON.parse(await run("ip", "-j", "route", "show", "default")) as {
      dev: string;
    }[];
    const dev = routes[0]?.dev;
    assert.ok(dev, "this machine has a default route");
    const eth = await ethtoolI(dev);
    const bus = eth.get("bus-info") ?? "";
    const sysDev = `/sys/bus/pci/devices/${bus}`;
    const vendor = readSys(`${sysDev}/vendor`);
    const device = readSys(`${sysDev}/device`);
    const speed = Number(readSys(`/sys/class/net/${dev}/speed`));
    // Only this test's namespace is polled: the daemon's own (the host's), no other.
    const { records } = await pollOnceJsonl(["-enrichNic", "-states", "listening"], {
      prefix: onlyNamespaces(),
    });
    assert.ok(records.length > 0, "the host has listening sockets");
    const expected: Record<string, unknown> = {
      uplink1_ifname: dev,
      uplink1_nic_driver: eth.get("driver"),
      uplink1_nic_bus_info: bus || undefined,
      uplink1_nic_fw_version: eth.get("firmware-version") || undefined,
      uplink1_nic_pci_vendor: vendor ? Number.parseInt(vendor, 16) : undefined,
      uplink1_nic_pci_device: device ? Number.parseInt(device, 16) : undefined,
      uplink1_nic_model: vendor && device
        ? (await pciIdsModel(vendor.slice(2), device.slice(2))) || undefined
        : undefined,
      uplink1_nic_speed_mbps: speed > 0 ? speed : undefined,
    };
    console.log(`${dev}: ${JSON.stringify(expected)}`);
    assert.ok(expected.uplink1_nic_driver, `ethtool -i ${dev} names a driver`);
    for (const r of records) {
      for (const [k, v] of Object.entries(expected)) assert.equal(r[k], v, `${k} of ${dev}`);
      assert.equal(r.uplink2_ifname, undefined, "one default route: one uplink");
    }
  },
});

Deno.test({
  name: "-enrichNic -uplinkInterfaces: a veth pair's two ends, driver veth, speed from sysfs",
  ignore: missing.length > 0,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ns = `i14a-nic-${Deno.pid}`;
    const [a, b] = [`nva${Deno.pid % 100000}`, `nvb${Deno.pid % 100000}`];
    await run("ip", "netns", "add", ns);
    try {
      await run("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b);
      await run("ip", "-n", ns, "link", "set", a, "up");
      await run("ip", "-n", ns, "link", "set", b, "up");
      await run("ip", "-n", ns, "link", "set", "lo", "up");
      const speeds = await Promise.all(
        [a, b].map(async (i) =>
          Number((await run("ip", "netns", "exec", ns, "cat", `/sys/class/net/${i}/speed`)).trim())
        ),
      );
      const drivers = await Promise.all(
        [a, b].map(async (i) => (await ethtoolI(i, ns)).get("driver")),
      );
      // The daemon runs inside the namespace (its uplinks are there) and polls only it.
      const { records } = await pollOnceJsonl(
        ["-enrichNic", "-uplinkInterfaces", `${a},${b}`, "-states", "all"],
        { prefix: [...onlyNamespaces(ns), "ip", "netns", "exec", ns] },
      );
      // Its own gRPC and metrics listeners are there: at least those.
      assert.ok(records.length >= 2, `records of ${ns}: ${records.length}`);
      for (const r of records) {
        assert.equal(r.netns, "default");
        [a, b].forEach((ifname, i) => {
          const p = `uplink${i + 1}_`;
          assert.equal(r[`${p}ifname`], ifname);
          assert.equal(r[`${p}nic_driver`], drivers[i]);
          assert.equal(r[`${p}nic_speed_mbps`], speeds[i]! > 0 ? speeds[i] : undefined);
          for (const f of ["nic_pci_vendor", "nic_pci_device", "nic_model", "nic_bus_info"]) {
            assert.equal(r[`${p}${f}`], undefined, `${p}${f}: no PCI device behind a veth`);
          }
        });
      }
      assert.equal(drivers[0], "veth");
    } finally {
      await run("ip", "netns", "del", ns);
    }
  },
});
