/**
 * A real S3 server for the tests: Ceph's RADOS gateway (Debian's ceph-mon, ceph-osd, radosgw)
 * on a throw-away single-node cluster in a temporary directory — one monitor, one OSD keeping its
 * data in RAM (memstore), no manager, no cephx — on free loopback ports, ready in about a second.
 * RGW checks SigV4 signatures, so a wrong secret key is refused as AWS would refuse it.
 *
 * {@link startRgw} returns the endpoint and keys; {@link Rgw.stopGateway} and
 * {@link Rgw.startGateway} stop and restart only the gateway (an S3 outage: the stored objects
 * stay in the cluster); disposing kills every daemon and deletes the directory.
 *
 * @module
 */
import { freePort, until } from "./run.ts";

/** Why RGW cannot run here ("" when it can): the Debian packages it needs. */
export function rgwMissing(): string {
  const need = [
    "/usr/bin/ceph-mon",
    "/usr/bin/ceph-osd",
    "/usr/bin/radosgw",
    "/usr/bin/radosgw-admin",
    "/usr/bin/monmaptool",
    "/usr/bin/ceph",
    "/usr/bin/curl",
  ];
  const absent = need.filter((p) => {
    try {
      Deno.statSync(p);
      return false;
    } catch {
      return true;
    }
  });
  return absent.length
    ? `Ceph RGW is not installed (${
      absent.join(", ")
    } missing: apt-get install ceph-mon ceph-osd radosgw curl)`
    : "";
}

/** A running single-node Ceph with its S3 gateway. */
export interface Rgw extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** Kills the gateway (the cluster, and what it stores, stays). */
  stopGateway(): Promise<void>;
  /** Starts the gateway again on the same port; resolves once it answers. */
  startGateway(): Promise<void>;
}

async function run(cmd: string, args: string[], env: Record<string, string>, log: string) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  await Deno.writeTextFile(log, new TextDecoder().decode(out.stderr), { append: true });
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${await Deno.readTextFile(log)}`,
    );
  }
  return text.trim();
}

function pidOf(dir: string, name: string): number {
  try {
    return Number(Deno.readTextFileSync(`${dir}/run/${name}.pid`).trim()) || 0;
  } catch {
    return 0;
  }
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \([^)]*\) Z/.test(stat);
  } catch {
    return false;
  }
}

async function kill(pid: number): Promise<void> {
  if (!pid || !alive(pid)) return;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
  await until(`pid ${pid} to end`, () => !alive(pid), 10_000);
}

/** Starts a single-node Ceph and its S3 gateway; throws with the daemons' logs if it cannot. */
export async function startRgw(): Promise<Rgw> {
  const dir = await Deno.makeTempDir({ prefix: "xtcp2-rgw-" });
  const monPort = freePort();
  const rgwPort = freePort();
  // The OSD binds a few ports of a range: a random range well away from the usual ones.
  const bindMin = 40000 + Math.floor(Math.random() * 200) * 100;
  const accessKey = "XTCP2TESTACCESSKEY01";
  const secretKey = "xtcp2testsecretkey000000000000000000001";
  const fsid = crypto.randomUUID();
  for (const d of ["run", "log", "mon", "osd/osd.0", "crash"]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  const conf = `[global]
fsid = ${fsid}
mon_host = v2:127.0.0.1:${monPort}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_port_min = ${bindMin}
ms_bind_port_max = ${bindMin + 99}
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
mon_warn_on_insecure_global_id_reclaim_allowed = false
run_dir = ${dir}/run
admin_socket = ${dir}/run/$name.asok
pid_file = ${dir}/run/$name.pid
log_file = ${dir}/log/$name.log
mon_cluster_log_to_file = false
crash_dir = ${dir}/crash
keyring = ${dir}/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 1
mon_data_avail_crit = 0
paxos_propose_interval = 0.01
paxos_min_wait = 0.001

[mon]
mon_data = ${dir}/mon/$name

[osd]
osd_data = ${dir}/osd/$name
osd_objectstore = memstore
memstore_device_bytes = 2147483648

[client.rgw.xtcp2]
rgw_frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
rgw_thread_pool_size = 16
`;
  // Notes on the settings: auth none needs ms_mon_client_mode crc (radosgw asks for 'secure'
  // otherwise and hangs); paxos_propose_interval makes pool creation immediate (else ~11 s);
  // tcp_nodelay saves ~40 ms per small S3 call; the disk thresholds let a full CI disk start.
  await Deno.writeTextFile(`${dir}/ceph.conf`, conf);
  const env = { CEPH_CONF: `${dir}/ceph.conf` };
  const log = `${dir}/log/commands.log`;
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const stopAll = async () => {
    try {
      for (const name of ["client.rgw.xtcp2", "osd.0", "mon.a"]) await kill(pidOf(dir, name));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
  const startGateway = async () => {
    await run("radosgw", ["-n", "client.rgw.xtcp2"], env, log);
    await until("the S3 gateway to answer", async () => {
      try {
        const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    }, 30_000);
  };
  try {
    await run(
      "monmaptool",
      ["--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${monPort}]`, `${dir}/monmap`],
      env,
      log,
    );
    await run("ceph-mon", ["--mkfs", "-i", "a", "--monmap", `${dir}/monmap`], env, log);
    await run("ceph-mon", ["-i", "a"], env, log);
    const uuid = crypto.randomUUID();
    const id = await run(
      "timeout",
      ["30", "ceph", "--connect-timeout", "20", "osd", "new", uuid],
      env,
      log,
    );
    if (id !== "0") throw new Error(`ceph osd new gave id "${id}", not 0`);
    await run("ceph-osd", ["-i", "0", "--mkfs", "--osd-uuid", uuid], env, log);
    await run("ceph-osd", ["-i", "0"], env, log);
    await run(
      "timeout",
      [
        "60",
        "radosgw-admin",
        "user",
        "create",
        "--uid=xtcp2",
        "--display-name=xtcp2",
        `--access-key=${accessKey}`,
        `--secret=${secretKey}`,
      ],
      env,
      log,
    );
    await startGateway();
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    endpoint,
    accessKey,
    secretKey,
    stopGateway: () => kill(pidOf(dir, "client.rgw.xtcp2")),
    startGateway,
    [Symbol.asyncDispose]: stopAll,
  };
}
