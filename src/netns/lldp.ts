/**
 * LLDP neighbours (`-enrichLldp`) as lldpd knows them, read with `lldpcli -u SOCKET -f json0
 * show neighbors details`: lldpd's control-socket protocol is raw C structs its authors declare
 * unstable (changed within 1.0.x), while lldpcli's json0 output keeps one shape (arrays of
 * `{"value": …}` leaves whatever the neighbour count).
 *
 * @module
 */

/** The neighbour seen on one local interface (absent where it announces nothing). */
export interface LldpNeighbour {
  /** The local interface it was seen on. */
  ifname: string;
  chassisName?: string;
  chassisId?: string;
  /** Its first management address. */
  mgmtIp?: string;
  portId?: string;
  portDescr?: string;
}

type Json = unknown;

function arr(v: Json): Json[] {
  return Array.isArray(v) ? v : [];
}

function field(o: Json, key: string): Json {
  return o !== null && typeof o === "object" ? (o as Record<string, Json>)[key] : undefined;
}

/** `o[key][0].value` as a string, json0's leaf shape. */
function leaf(o: Json, key: string): string | undefined {
  const v = field(arr(field(o, key))[0], "value");
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * The neighbours in lldpcli's `-f json0 show neighbors details` output, by local interface (the
 * first neighbour of each). Throws SyntaxError on text that is not JSON.
 *
 * @example
 * ```ts
 * parseNeighbours('{"lldp":[{}]}'); // Map(0) {}
 * ```
 */
export function parseNeighbours(text: string): Map<string, LldpNeighbour> {
  const out = new Map<string, LldpNeighbour>();
  for (const lldp of arr(field(JSON.parse(text), "lldp"))) {
    for (const iface of arr(field(lldp, "interface"))) {
      const ifname = field(iface, "name");
      if (typeof ifname !== "string" || out.has(ifname)) continue;
      const chassis = arr(field(iface, "chassis"))[0];
      const port = arr(field(iface, "port"))[0];
      const n: LldpNeighbour = { ifname };
      const set = (k: Exclude<keyof LldpNeighbour, "ifname">, v: string | undefined) => {
        if (v !== undefined) n[k] = v;
      };
      set("chassisName", leaf(chassis, "name"));
      set("chassisId", leaf(chassis, "id"));
      set("mgmtIp", leaf(chassis, "mgmt-ip"));
      set("portId", leaf(port, "id"));
      set("portDescr", leaf(port, "descr"));
      out.set(ifname, n);
    }
  }
  return out;
}

/**
 * Asks lldpd at `socket` for its neighbours (lldpcli, killed after `timeoutMs` or when `signal`
 * aborts); throws when lldpcli is missing, fails (no daemon at the socket) or does not answer
 * in time.
 */
export async function lldpNeighbours(
  socket: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Map<string, LldpNeighbour>> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const out = await new Deno.Command("lldpcli", {
    args: ["-u", socket, "-f", "json0", "show", "neighbors", "details"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
  }).output();
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim() ||
      (out.signal ? `killed by ${out.signal} after ${timeoutMs} ms` : `exit code ${out.code}`);
    throw new Error(`lldpcli -u ${socket}: ${why}`);
  }
  return parseNeighbours(new TextDecoder().decode(out.stdout));
}
