/**
 * Real podman containers for the container-enrichment tests: a private podman (its own
 * configuration, storage and lock files under a temporary directory; runc; cgroupfs), an image
 * imported from a busybox-static root file system (no registry), podman's Docker Engine API on a
 * unix socket, and containers that listen on ports. podman and netavark run inside a namespace
 * of the test's own, so the bridge, the veths, the iptables chains and the `ip_forward=1`
 * netavark sets never touch the host's namespace; a container on the bridge still gets its own
 * namespace bind-mounted at `/run/netns/netns-<uuid>`, one with `--network none` only a
 * `/proc/<pid>/ns/net`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { output, until } from "./run.ts";

/** What is needed, as Debian packages. */
export const PODMAN_PACKAGES = ["podman", "runc", "netavark", "iptables", "busybox-static"];

/** Why podman cannot run here, or undefined when it can. */
export function podmanMissing(): string | undefined {
  for (const bin of ["/usr/bin/podman", "/usr/sbin/runc", "/bin/busybox"]) {
    try {
      Deno.statSync(bin);
    } catch {
      return `${bin} is absent (apt-get install ${PODMAN_PACKAGES.join(" ")})`;
    }
  }
  return undefined;
}

/** A container as the test started it and podman's API describes it. */
export interface Container {
  id: string;
  name: string;
  image: string;
  pid: number;
  /** `/run/netns/netns-<uuid>`, or "" with `--network none`. */
  sandboxKey: string;
  /** The port its httpd listens on, inside its namespace. */
  port: number;
}

/** A private podman with its API up; dispose removes every trace. */
export interface Podman extends AsyncDisposable {
  /** The Docker Engine API socket. */
  socket: string;
  /** The image the containers run. */
  image: string;
  /** Starts a container running busybox httpd on `port` (`network`: "bridge" or "none"). */
  run(name: string, network: "bridge" | "none", port: number): Promise<Container>;
}

function sh(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  return output(cmd, args, env ? { env } : {});
}

/** GET on the API with curl (a client that is not ours). */
async function apiGet(socket: string, path: string): Promise<unknown> {
  return JSON.parse(await sh("curl", ["-sf", "--unix-socket", socket, `http://d/v1.41${path}`]));
}

/** Starts a private podman and its API (names made unique by `tag`). */
export async function startPodman(tag: string): Promise<Podman> {
  const dir = await Deno.makeTempDir({ prefix: `xtcp2-${tag}-` });
  await Deno.chmod(dir, 0o755);
  const hostNs = `${tag}-host`;
  const net = `${tag}-net`;
  const image = `localhost/${tag}-busybox:test`;
  const env = {
    CONTAINERS_CONF: `${dir}/containers.conf`,
    CONTAINERS_STORAGE_CONF: `${dir}/storage.conf`,
  };
  const socket = `${dir}/api.sock`;
  let service: Deno.ChildProcess | undefined;
  const podman = (...args: string[]) =>
    sh("nsenter", [`--net=/run/netns/${hostNs}`, "podman", ...args], env);
  const cleanup = async () => {
    await podman("rm", "-af", "-t", "0").catch(() => {}); // busybox as PID 1 ignores SIGTERM
    if (service) {
      try {
        service.kill("SIGTERM");
      } catch { /* exited */ }
      await service.status;
    }
    await podman("system", "reset", "-f").catch(() => {});
    await sh("ip", ["netns", "del", hostNs]).catch(() => {});
    // podman's cgroupfs manager leaves /libpod_parent{,/conmon}: rmdir removes them once empty.
    await sh("sh", [
      "-c",
      "rmdir /sys/fs/cgroup/*/libpod_parent/conmon /sys/fs/cgroup/*/libpod_parent 2>/dev/null || true",
    ]);
    // Mounts podman left under the directory (overlay, shm), innermost first.
    const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
      .map((l) => l.split(" ")[4] ?? "").filter((m) => m.startsWith(dir)).sort().reverse();
    for (const m of mounts) await sh("umount", ["-l", m]).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await sh("ip", ["netns", "add", hostNs]);
    await sh("ip", ["-n", hostNs, "link", "set", "lo", "up"]);
    const nofile = (await sh("sh", ["-c", "ulimit -Hn"])).trim();
    // runc: crun refuses a cgroup v1 hybrid host; no CAP_SYS_RESOURCE here, so ulimits within
    // the hard limits; lock_type file: clear of any other podman's /dev/shm lock.
    await Deno.writeTextFile(
      env.CONTAINERS_CONF,
      [
        "[containers]",
        `default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]`,
        "[engine]",
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        'lock_type = "file"',
        `tmp_dir = "${dir}/run/libpod"`,
        "[network]",
        'network_backend = "netavark"',
        `network_config_dir = "${dir}/networks"`,
        `default_network = "${net}"`,
        "",
      ].join("\n"),
    );
    await Deno.writeTextFile(
      env.CONTAINERS_STORAGE_CONF,
      `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/graph"\nrunroot = "${dir}/run/storage"\n`,
    );
    // The network by hand: podman 4.3 cannot name the bridge. Internal (no NAT), no DNS daemon.
    await Deno.mkdir(`${dir}/networks`);
    const subnet = `10.${200 + (Deno.pid % 50)}.${Deno.pid % 250}.0/24`;
    await Deno.writeTextFile(
      `${dir}/networks/${net}.json`,
      JSON.stringify({
        name: net,
        id: [...crypto.getRandomValues(new Uint8Array(32))]
          .map((b) => b.toString(16).padStart(2, "0")).join(""),
        driver: "bridge",
        network_interface: `${tag.slice(0, 8)}br0`,
        created: new Date().toISOString(),
        subnets: [{ subnet }],
        ipv6_enabled: false,
        internal: true,
        dns_enabled: false,
        ipam_options: { driver: "host-local" },
      }),
    );
    const root = `${dir}/rootfs`;
    for (const d of ["bin", "www", "tmp", "etc", "proc", "sys", "dev"]) {
      await Deno.mkdir(`${root}/${d}`, { recursive: true });
    }
    await Deno.copyFile("/bin/busybox", `${root}/bin/busybox`);
    await Deno.chmod(`${root}/bin/busybox`, 0o755);
    for (const a of ["sh", "httpd", "sleep"]) await Deno.symlink("busybox", `${root}/bin/${a}`);
    await Deno.writeTextFile(`${root}/www/index.html`, "xtcp2 test\n");
    await sh("tar", ["-C", root, "-cf", `${dir}/rootfs.tar`, "."]);
    await podman("import", "--change", 'CMD ["/bin/sh"]', `${dir}/rootfs.tar`, image);
    service = new Deno.Command("nsenter", {
      args: [
        `--net=/run/netns/${hostNs}`,
        "podman",
        "system",
        "service",
        "--time=0",
        `unix://${socket}`,
      ],
      env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await until("podman's API", async () => {
      try {
        await sh("curl", ["-sf", "--unix-socket", socket, "http://d/_ping"]);
        return true;
      } catch {
        return false;
      }
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    socket,
    image,
    async run(name, network, port) {
      await podman(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network === "bridge" ? net : "none",
        image,
        "/bin/httpd",
        "-f",
        "-p",
        String(port),
        "-h",
        "/www",
      );
      const d = await apiGet(socket, `/containers/${name}/json`) as {
        Id: string;
        Name: string;
        Config: { Image: string };
        State: { Pid: number };
        NetworkSettings: { SandboxKey: string };
      };
      assert.ok(d.State.Pid > 0, `${name} has no pid`);
      return {
        id: d.Id,
        name: d.Name.replace(/^\//, ""),
        image: d.Config.Image,
        pid: d.State.Pid,
        sandboxKey: d.NetworkSettings.SandboxKey,
        port,
      };
    },
    [Symbol.asyncDispose]: cleanup,
  };
}
