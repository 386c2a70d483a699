/**
 * Where the shared netlink captures live, and loud skipping when they are absent. The captures
 * are read in place from `../shared/fixtures/netlink` and never copied into this repository.
 *
 * @module
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { NETLINK_SOCK_DIAG, pcapPackets } from "../../src/netlink/pcap.ts";

/** Directory of the shared captures (override with XTCP2_FIXTURES). */
export const FIXTURE_DIR: string = Deno.env.get("XTCP2_FIXTURES") ??
  fromFileUrl(new URL("../../../shared/fixtures/netlink", import.meta.url));

/** Directory of the captures this project made itself (committed). */
export const OWN_CAPTURE_DIR: string = fromFileUrl(new URL("../captures", import.meta.url));

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether the shared fixtures are present; warns loudly once when they are not. */
export const HAVE_FIXTURES: boolean = (() => {
  const ok = exists(FIXTURE_DIR);
  if (!ok) {
    console.warn(
      `\n!!! SKIPPING shared-fixture tests: ${FIXTURE_DIR} is absent (set XTCP2_FIXTURES to its path)\n`,
    );
  }
  return ok;
})();

/** A capture and the `ss` text taken at the same moment. */
export interface CapturePair {
  /** Short name, e.g. `6_10_3/100`. */
  name: string;
  /** Path of the pcap. */
  pcap: string;
  /** Path of the matching ss text, if any. */
  ss?: string;
  /** Tolerance in ms for the time-dependent lastsnd/lastrcv/lastack (0 = exact). */
  lastTolMs: number;
}

/** Every bulk capture of the shared fixtures, paired with its ss text where one exists. */
export function sharedCaptures(): CapturePair[] {
  if (!HAVE_FIXTURES) return [];
  const out: CapturePair[] = [];
  for (const dir of [...Deno.readDirSync(FIXTURE_DIR)].filter((d) => d.isDirectory)) {
    const files = [...Deno.readDirSync(`${FIXTURE_DIR}/${dir.name}`)].map((e) => e.name);
    for (const f of files) {
      const m = /^(?:.*_)?tcp_(\d+)_sockets\.pcap$/.exec(f);
      if (!m) continue;
      const ss = files.find((x) => x === `${dir.name}_ss_tcp_info_a_${m[1]}`);
      out.push({
        name: `${dir.name}/${m[1]}`,
        pcap: `${FIXTURE_DIR}/${dir.name}/${f}`,
        ...(ss ? { ss: `${FIXTURE_DIR}/${dir.name}/${ss}` } : {}),
        lastTolMs: 0,
      });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Every pcap under the shared fixtures (single packets included). */
export function allSharedPcaps(): string[] {
  if (!HAVE_FIXTURES) return [];
  const out: string[] = [];
  for (const dir of Deno.readDirSync(FIXTURE_DIR)) {
    if (!dir.isDirectory) continue;
    for (const f of Deno.readDirSync(`${FIXTURE_DIR}/${dir.name}`)) {
      if (f.name.endsWith(".pcap")) out.push(`${FIXTURE_DIR}/${dir.name}/${f.name}`);
    }
  }
  return out.sort();
}

/** The captures this project made on its own kernel (tests/captures/NAME.pcap + NAME.ss). */
export function ownCaptures(): CapturePair[] {
  if (!exists(OWN_CAPTURE_DIR)) return [];
  const out: CapturePair[] = [];
  for (const e of Deno.readDirSync(OWN_CAPTURE_DIR)) {
    if (!e.name.endsWith(".pcap")) continue;
    const base = e.name.slice(0, -5);
    const meta = JSON.parse(Deno.readTextFileSync(`${OWN_CAPTURE_DIR}/${base}.json`));
    out.push({
      name: `own/${base}`,
      pcap: `${OWN_CAPTURE_DIR}/${e.name}`,
      ss: `${OWN_CAPTURE_DIR}/${base}.ss`,
      lastTolMs: Number(meta.lastTolMs ?? 2000),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Each sock_diag datagram of a capture (requests and replies), as its own bytes. */
export function datagrams(path: string): Uint8Array[] {
  const bytes = Deno.readFileSync(path);
  return [...pcapPackets(bytes, path)]
    .filter((p) => p.protocol === NETLINK_SOCK_DIAG)
    .map((p) => bytes.slice(p.offset, p.end));
}
