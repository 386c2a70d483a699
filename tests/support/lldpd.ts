/**
 * Real lldpd neighbours: two test namespaces joined by a veth, one lldpd in each with its own
 * control socket (`-u`), system name, description, management address and port description,
 * sending every second; resolves once side A sees side B.
 *
 * @module
 */
import { output, until } from "./run.ts";

/** One side: its namespace, interface and what its lldpd announces. */
export interface LldpSide {
  netns: string;
  ifname: string;
  /** lldpd's control socket. */
  socket: string;
  hostname: string;
  mgmtIp: string;
  portDescr: string;
}

/** Two lldpd daemons that see each other; dispose stops them and deletes the namespaces. */
export interface LldpPair extends AsyncDisposable {
  a: LldpSide;
  b: LldpSide;
}

/** Why lldpd cannot run here, or undefined when it can. */
export function lldpdMissing(): string | undefined {
  for (const bin of ["/usr/sbin/lldpd", "/usr/sbin/lldpcli"]) {
    try {
      Deno.statSync(bin);
    } catch {
      return `${bin} is absent (apt-get install lldpd)`;
    }
  }
  return undefined;
}

function sh(cmd: string, ...args: string[]): Promise<string> {
  return output(cmd, args);
}

/** `lldpcli -u SOCKET -f json0 …` parsed. */
export async function lldpcli(socket: string, ...args: string[]): Promise<unknown> {
  return JSON.parse(await sh("lldpcli", "-u", socket, "-f", "json0", ...args));
}

/** Starts the pair (names made unique by `tag`, at most 6 characters). */
export async function startLldpPair(tag: string): Promise<LldpPair> {
  const dir = await Deno.makeTempDir({ prefix: `xtcp2-lldp-` });
  await Deno.chmod(dir, 0o755); // lldpcli runs as _lldpd: the socket's directory must be open
  const n = Deno.pid % 10000;
  const side = (s: "a" | "b", i: number): LldpSide => ({
    netns: `${tag}-lldp-${s}-${Deno.pid}`,
    ifname: `${tag}l${s}${n}`,
    socket: `${dir}/${s}.sock`,
    hostname: `${tag}-side-${s}-${n}`,
    mgmtIp: `10.213.${n % 250}.${i}`,
    portDescr: `uplink port of side ${s.toUpperCase()}`,
  });
  const a = side("a", 1);
  const b = side("b", 2);
  const daemons: Deno.ChildProcess[] = [];
  const cleanup = async () => {
    for (const d of daemons) {
      try {
        d.kill("SIGTERM");
      } catch { /* exited */ }
      await d.status;
    }
    for (const s of [a, b]) await sh("ip", "netns", "del", s.netns).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (const s of [a, b]) await sh("ip", "netns", "add", s.netns);
    await sh(
      "ip",
      "link",
      "add",
      a.ifname,
      "netns",
      a.netns,
      "type",
      "veth",
      "peer",
      "name",
      b.ifname,
      "netns",
      b.netns,
    );
    for (const s of [a, b]) {
      await sh("ip", "-n", s.netns, "addr", "add", `${s.mgmtIp}/24`, "dev", s.ifname);
      await sh("ip", "-n", s.netns, "link", "set", "lo", "up");
      await sh("ip", "-n", s.netns, "link", "set", s.ifname, "up");
      await Deno.writeTextFile(
        `${dir}/${s.ifname}.conf`,
        [
          `configure system hostname ${s.hostname}`,
          `configure system description "xtcp2 test ${s.hostname}"`,
          "configure lldp tx-interval 1",
          "configure lldp portidsubtype ifname",
          `configure ports ${s.ifname} lldp portdescription "${s.portDescr}"`,
          "",
        ].join("\n"),
      );
    }
    // A PDU sent before the veth is up is lost: wait for both ends to be up.
    await until(
      "the veth up",
      async () => (await sh("ip", "-n", a.netns, "-br", "link", "show", a.ifname)).includes(" UP "),
    );
    // The querying side first: it then sees the neighbour's first PDU.
    for (const s of [a, b]) {
      daemons.push(
        new Deno.Command("ip", {
          args: [
            "netns",
            "exec",
            s.netns,
            "lldpd",
            "-d",
            "-u",
            s.socket,
            "-I",
            s.ifname,
            "-m",
            s.mgmtIp,
            "-O",
            `${dir}/${s.ifname}.conf`,
          ],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
      await until(`lldpd of ${s.netns}`, async () => {
        try {
          await lldpcli(s.socket, "show", "chassis");
          return true;
        } catch {
          return false;
        }
      });
    }
    await until(
      "side A sees side B",
      async () => JSON.stringify(await lldpcli(a.socket, "show", "neighbors")).includes(b.hostname),
    );
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { a, b, [Symbol.asyncDispose]: cleanup };
}
