/**
 * The uplink columns (`uplink1_*`, `uplink2_*`): the uplink interfaces' NIC facts
 * (`-enrichNic`) and LLDP neighbours (`-enrichLldp`), computed at start and every refresh
 * period off the poll path (sysfs reads and ETHTOOL_GDRVINFO take microseconds; lldpcli runs as
 * a child process, bounded in time), kept as one ready set of stamp fields that every poll
 * copies. Failures are counted (`enrichNic/read/error`, `enrichLldp/lldpcli/error`,
 * `uplinks/none`) and leave the columns as they were.
 *
 * @module
 */
import type { StampValue } from "../record/stamp.ts";
import { errorMessage } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import { type LldpNeighbour, lldpNeighbours } from "./lldp.ts";
import { type NicFacts, nicFacts, type NicOptions, selectUplinks } from "./nic.ts";

/** Options of {@link Uplinks}. */
export interface UplinkOptions {
  /** `-uplinkInterfaces` (empty: the default-route interfaces, else the physical ones). */
  interfaces: readonly string[];
  /** `-uplinkCount` (0–2). */
  count: number;
  /** Read NIC facts. */
  nic: boolean;
  /** Ask lldpd through lldpcli. */
  lldp?: { socket: string; timeoutMs: number };
  /** Read everything again this often (ms; 0: only at start). */
  refreshMs: number;
  /** Where sysfs and procfs are. */
  where?: NicOptions;
  counters: Counters;
  log: Logger;
}

/** The uplink stamp fields of one uplink slot (1 or 2). */
export function uplinkFields(
  slot: number,
  nic: NicFacts | undefined,
  lldp: LldpNeighbour | undefined,
  ifname: string,
): Record<string, StampValue | undefined> {
  const p = `uplink${slot}_`;
  return {
    [`${p}ifname`]: ifname,
    [`${p}nic_driver`]: nic?.driver,
    [`${p}nic_model`]: nic?.model,
    [`${p}nic_pci_vendor`]: nic?.pciVendor,
    [`${p}nic_pci_device`]: nic?.pciDevice,
    [`${p}nic_bus_info`]: nic?.busInfo,
    [`${p}nic_speed_mbps`]: nic?.speedMbps,
    [`${p}nic_fw_version`]: nic?.fwVersion,
    [`${p}lldp_chassis_name`]: lldp?.chassisName,
    [`${p}lldp_chassis_id`]: lldp?.chassisId,
    [`${p}lldp_mgmt_ip`]: lldp?.mgmtIp,
    [`${p}lldp_port_id`]: lldp?.portId,
    [`${p}lldp_port_descr`]: lldp?.portDescr,
  };
}

/** The uplinks' facts, refreshed on a slow timer. */
export class Uplinks implements Disposable {
  /** The stamp fields every record gets (replaced whole at each refresh). */
  fields: Readonly<Record<string, StampValue | undefined>> = {};
  private names: string[] = [];
  private nic = new Map<string, NicFacts>();
  private lldp = new Map<string, LldpNeighbour>();
  private refreshing: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly stop = new AbortController();
  private readonly warned = new Set<string>();

  /** @param opts which interfaces, which facts, how often */
  constructor(private readonly opts: UplinkOptions) {}

  /** Reads everything once now (NIC facts before returning, LLDP soon) and starts the timer. */
  start(): Promise<void> {
    const first = this.refresh();
    if (this.opts.refreshMs > 0 && this.timer === undefined) {
      this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs);
      Deno.unrefTimer(this.timer);
    }
    return first;
  }

  /** Warns once per distinct problem; later ones at debug level. */
  private warn(key: string, msg: string): void {
    if (this.warned.has(key)) this.opts.log.debug(msg);
    else {
      this.warned.add(key);
      this.opts.log.warn(msg);
    }
  }

  /** One refresh (NIC facts synchronously, then LLDP); never rejects. */
  refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const o = this.opts;
    this.names = selectUplinks(o.interfaces, o.count, o.where);
    if (this.names.length === 0) {
      o.counters.inc("uplinks", "none");
      this.warn("none", "Uplink enrichment: no uplink interface (none named, no default route)");
    }
    if (o.nic) {
      const nic = new Map<string, NicFacts>();
      for (const n of this.names) {
        try {
          nic.set(n, nicFacts(n, o.where));
        } catch (err) {
          o.counters.inc("enrichNic", "read", "error");
          this.warn(`nic ${n}`, `NIC enrichment: ${n}: ${errorMessage(err)}`);
        }
      }
      this.nic = nic;
    }
    this.build();
    const lldp = o.lldp;
    if (!lldp || this.names.length === 0) return Promise.resolve();
    this.refreshing = (async () => {
      try {
        this.lldp = await lldpNeighbours(lldp.socket, lldp.timeoutMs, this.stop.signal);
        this.build();
      } catch (err) {
        if (this.stop.signal.aborted) return;
        o.counters.inc("enrichLldp", "lldpcli", "error");
        this.warn("lldp", `LLDP enrichment: ${errorMessage(err)}`);
      }
    })().finally(() => this.refreshing = undefined);
    return this.refreshing;
  }

  private build(): void {
    let f: Record<string, StampValue | undefined> = {};
    this.names.forEach((n, i) => {
      f = { ...f, ...uplinkFields(i + 1, this.nic.get(n), this.lldp.get(n), n) };
    });
    this.fields = f;
  }

  /** Stops the timer and a lldpcli in flight. */
  [Symbol.dispose](): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.stop.abort();
  }
}
