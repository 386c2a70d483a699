/**
 * What operators deploy (contrib/): the systemd unit, checked by `systemd-analyze verify` and
 * against the daemon's capabilities, flags and readiness probe; the Kubernetes DaemonSet, parsed
 * (npm yaml) and checked against the daemon's real flags, ports, capabilities, probes and the
 * README's measured RSS and CPU; the Grafana dashboard, whose every metric is checked on the
 * /metrics of a running daemon.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { FLAGS } from "../src/config/flags.ts";
import { loadConfig } from "../src/config/load.ts";
import { CAPS } from "../src/daemon/caps.ts";
import { parseListen } from "../src/util/address.ts";
import { scrape } from "./support/daemon.ts";
import { daemon, morePolls, stopDaemon } from "./support/delivery.ts";
import { freePort, MAIN, PERMS, until, V8_FLAGS } from "./support/run.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const UNIT = `${ROOT}contrib/systemd/xtcp2.service`;
const MANIFEST = `${ROOT}contrib/k8s/xtcp2-daemonset.yaml`;
const DASHBOARD = `${ROOT}contrib/grafana/xtcp2.json`;
const SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze";
const BINARY = "/usr/local/bin/xtcp2";

/** A script standing for the compiled binary: `deno run` with the xtcp2 task's flags. */
async function binaryScript(dir: string): Promise<string> {
  const path = `${dir}/xtcp2`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\nexec ${Deno.execPath()} run --quiet ${V8_FLAGS} ${PERMS.join(" ")} ${MAIN} "$@"\n`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

/** The [Service] settings of a unit file: key → values (a key may repeat). */
function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.replace(/\\\n/g, " ").split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

function one(s: Map<string, string[]>, key: string): string {
  const v = s.get(key);
  assert.ok(v?.length === 1, `${key}: ${JSON.stringify(v)}`);
  return v[0] ?? "";
}

const USED_CAPS = CAPS.filter((c) => c.fatal || c.name === "CAP_SYS_PTRACE").map((c) => c.name);

function missing(path: string, pkg: string): boolean {
  try {
    Deno.statSync(path);
    return false;
  } catch {
    console.error(`SKIP: ${path} missing (apt install ${pkg})`);
    return true;
  }
}

Deno.test({
  name:
    "systemd unit: systemd-analyze verify passes; the daemon's capabilities only; hardening, state directory, restart policy; its flags parse; its readiness check waits for /readyz",
  ignore: missing(SYSTEMD_ANALYZE, "systemd"),
  sanitizeResources: false,
  async fn() {
    const text = await Deno.readTextFile(UNIT);
    const dir = await Deno.makeTempDir();
    try {
      // verify checks that each command exists: the binary is the script, all else as shipped.
      const script = await binaryScript(dir);
      const unit = `${dir}/xtcp2.service`;
      await Deno.writeTextFile(unit, text.replaceAll(BINARY, script));
      const out = await new Deno.Command(SYSTEMD_ANALYZE, {
        args: ["verify", "--man=no", unit],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const said = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, said);
      // verify exits 0 on settings it ignores: it must say nothing at all.
      assert.equal(said.trim(), "");

      const s = unitSettings(text);
      const ambient = one(s, "AmbientCapabilities").split(/\s+/).sort();
      assert.deepEqual(ambient, [...USED_CAPS].sort());
      assert.deepEqual(one(s, "CapabilityBoundingSet").split(/\s+/).sort(), ambient);
      assert.equal(one(s, "ProtectSystem"), "strict");
      assert.equal(one(s, "ProtectHome"), "yes");
      assert.equal(one(s, "NoNewPrivileges"), "yes");
      assert.equal(one(s, "StateDirectory"), "xtcp2");
      assert.equal(one(s, "Restart"), "on-failure");
      assert.equal(one(s, "RestartPreventExitStatus"), "2"); // a config error
      // No setting that would hide the other namespaces or processes from it.
      for (const k of ["PrivateNetwork", "PrivatePIDs", "ProtectProc", "PrivateUsers"]) {
        assert.ok(!s.has(k), k);
      }
      const exec = one(s, "ExecStart").split(/\s+/);
      assert.equal(exec[0], BINARY);
      assert.doesNotThrow(() => loadConfig(exec.slice(1), {}));
      assert.ok(text.includes(`WorkingDirectory=/var/lib/xtcp2`));

      // The readiness check, run as systemd would (sh -c), against a daemon that becomes ready.
      const post = one(s, "ExecStartPost");
      const m = /^\/bin\/sh -c '(.*)'$/.exec(post);
      assert.ok(m?.[1], post);
      const port = freePort();
      const check = new Deno.Command("/bin/sh", {
        args: ["-c", m[1].replaceAll(BINARY, script)],
        env: { PROM_LISTEN: `127.0.0.1:${port}` },
        stdout: "null",
        stderr: "null",
      }).spawn();
      let ended = false;
      const status = check.status.then((st) => {
        ended = true;
        return st;
      });
      // Nothing listens yet: it keeps asking.
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(ended, false, "the readiness check ended with no daemon running");
      const d = daemon("null", "protobufList", ["-promListen", `127.0.0.1:${port}`]);
      try {
        assert.equal((await status).code, 0);
        assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
      } finally {
        await stopDaemon(d);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

type Obj = Record<string, unknown>;

function get(o: unknown, path: string): unknown {
  let cur = o;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Obj)[k];
  }
  return cur;
}

function str(o: unknown, path: string): string {
  const v = get(o, path);
  assert.equal(typeof v, "string", `${path}: ${JSON.stringify(v)}`);
  return v as string;
}

/** Bytes of a Kubernetes quantity (128Mi, 1Gi, 300M). */
function bytesOf(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(q);
  assert.ok(m?.[1], q);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 };
  return Number(m[1]) * (m[2] ? unit[m[2] as keyof typeof unit] : 1);
}

/** Cores of a CPU quantity (50m, 1). */
function coresOf(q: string): number {
  return q.endsWith("m") ? Number(q.slice(0, -1)) / 1000 : Number(q);
}

/** The README's measured figures: every peak RSS (MB), and CPU ms of a 100k-socket poll to null. */
function readmeFigures(readme: string): { peakRssMb: number[]; nullPollCpuMs: number } {
  const peakRssMb: number[] = [];
  let nullPollCpuMs = 0;
  let rssColumn = -1;
  let cpuColumn = -1;
  for (const line of readme.split("\n")) {
    if (!line.startsWith("|")) {
      rssColumn = cpuColumn = -1;
      continue;
    }
    const cells = line.split("|").slice(1, -1).map((c) => c.trim());
    if (cells.includes("peak RSS MB") || cells.includes("CPU ms/poll")) {
      rssColumn = cells.indexOf("peak RSS MB");
      cpuColumn = cells.indexOf("CPU ms/poll");
      continue;
    }
    const rss = Number(cells[rssColumn]);
    if (rssColumn >= 0 && Number.isFinite(rss) && rss > 0) peakRssMb.push(rss);
    const cpu = Number(cells[cpuColumn]);
    if (cpuColumn >= 0 && cells[0] === "null" && Number(cells[1]) >= 100_000 && cpu > 0) {
      nullPollCpuMs = cpu;
    }
  }
  return { peakRssMb, nullPollCpuMs };
}

Deno.test("Kubernetes DaemonSet: host network and PID, the namespace mounts, the daemon's capabilities, probes on its real port, a ConfigMap the daemon accepts, resources from the README's figures", async () => {
  const docs = parseAllDocuments(await Deno.readTextFile(MANIFEST)).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS() as Obj;
  });
  const byKind = (kind: string) => {
    const d = docs.find((x) => x.kind === kind);
    assert.ok(d, `no ${kind}`);
    return d;
  };
  const ds = byKind("DaemonSet");
  const cm = byKind("ConfigMap");
  const pod = get(ds, "spec.template.spec") as Obj;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.hostPID, true);
  assert.equal(str(cm, "metadata.name"), "xtcp2-config");
  const containers = pod.containers as Obj[];
  assert.equal(containers.length, 1);
  const c = containers[0] as Obj;

  // Capabilities: exactly those the daemon uses (caps.ts names them CAP_*).
  const caps = get(c, "securityContext.capabilities") as { add: string[]; drop: string[] };
  assert.deepEqual(caps.drop, ["ALL"]);
  assert.deepEqual(caps.add.map((n) => `CAP_${n}`).sort(), [...USED_CAPS].sort());
  assert.equal(get(c, "securityContext.allowPrivilegeEscalation"), false);

  // Namespace discovery: /run/netns and /run/docker/netns from the host, new mounts propagated.
  const volumes = new Map((pod.volumes as Obj[]).map((v) => [v.name as string, v]));
  for (const path of ["/run/netns", "/run/docker/netns"]) {
    const mount = (c.volumeMounts as Obj[]).find((m) => m.mountPath === path);
    assert.ok(mount, `no mount at ${path}`);
    assert.equal(mount.mountPropagation, "HostToContainer");
    assert.equal(get(volumes.get(mount.name as string), "hostPath.path"), path);
  }

  // The environment: XTCP_CONFIG_JSON from the ConfigMap; no flag's variable (it replaces them).
  const env = c.env as Obj[];
  const ref = env.find((e) => e.name === "XTCP_CONFIG_JSON");
  assert.equal(get(ref, "valueFrom.configMapKeyRef.name"), "xtcp2-config");
  const key = str(ref, "valueFrom.configMapKeyRef.key");
  const json = str(cm, `data.${key}`);
  const flagEnvs = new Set(FLAGS.flatMap((f) => (f.env ? [f.env] : [])));
  for (const e of env) assert.ok(!flagEnvs.has(e.name as string), `${e.name} has no effect`);

  // The daemon takes the command line and the ConfigMap as they are ($(NODE_IP) as an address).
  assert.deepEqual(c.command, ["/usr/local/bin/xtcp2"]);
  const args = (c.args as string[]).map((a) => a.replace("$(NODE_IP)", "10.0.0.7"));
  const loaded = loadConfig(args, { XTCP_CONFIG_JSON: json });
  assert.equal(loaded.sources.get("*"), "XTCP_CONFIG_JSON");
  assert.equal(loaded.config.marshalTo, "protobufList");
  const listen = parseListen(loaded.process.promListen);
  assert.equal(listen.hostname, "10.0.0.7");

  // Probes on the listener's real port and paths; the metrics port is that port too.
  const ports = c.ports as Obj[];
  const metrics = ports.find((p) => p.name === "metrics");
  assert.equal(metrics?.containerPort, listen.port);
  assert.equal(str(c, "livenessProbe.httpGet.path"), "/healthz");
  assert.equal(str(c, "readinessProbe.httpGet.path"), "/readyz");
  for (const probe of ["livenessProbe", "readinessProbe"]) {
    assert.equal(get(c, `${probe}.httpGet.port`), "metrics");
  }
  const ann = get(ds, "spec.template.metadata.annotations") as Obj;
  assert.equal(Number(ann["prometheus.io/port"]), listen.port);
  assert.equal(ann["prometheus.io/path"], loaded.process.promPath);

  // Resources: the memory limit above every peak RSS measured (1.2× margin), the request above
  // the RSS of a 100k-socket poll to null; the CPU request above a 100k-socket poll's CPU at the
  // configured frequency.
  const { peakRssMb, nullPollCpuMs } = readmeFigures(await Deno.readTextFile(`${ROOT}README.md`));
  assert.ok(peakRssMb.length >= 4 && nullPollCpuMs > 0, "the README's tables were not found");
  const limit = bytesOf(str(c, "resources.limits.memory"));
  const request = bytesOf(str(c, "resources.requests.memory"));
  assert.ok(limit >= 1.2 * Math.max(...peakRssMb) * 1e6, `limit ${limit} vs ${peakRssMb}`);
  assert.ok(request >= Math.min(...peakRssMb) * 1e6, `request ${request}`);
  const frequencyS = Number(loaded.config.pollFrequency?.seconds ?? 0n);
  assert.ok(frequencyS > 0);
  const cpuRequest = coresOf(str(c, "resources.requests.cpu"));
  assert.ok(cpuRequest >= nullPollCpuMs / 1000 / frequencyS, `cpu request ${cpuRequest}`);
  assert.ok(coresOf(str(c, "resources.limits.cpu")) >= cpuRequest);
  // The spool fits its volume.
  const state = (c.volumeMounts as Obj[]).find((m) => m.mountPath === "/var/lib/xtcp2");
  const stateSize = bytesOf(str(volumes.get(state?.name as string), "emptyDir.sizeLimit"));
  assert.ok(loaded.config.spoolDir.startsWith("/var/lib/xtcp2/"));
  assert.ok(Number(loaded.config.spoolMaxBytes) < stateSize);
});

/** Metric names in a PromQL expression (functions, keywords, label names and strings left out). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  const words = [...bare.matchAll(/[A-Za-z_:][\w:]*(?!\w)(?!\s*\()/g)].map((m) => m[0]);
  const keywords = new Set(["and", "or", "unless", "bool", "offset"]);
  return words.filter((w) => !keywords.has(w) && !/^\d/.test(w));
}

/** Each `name{label="value",…}` selector of an expression, with its exact matchers. */
function selectors(expr: string): { name: string; labels: [string, string][] }[] {
  return [...expr.matchAll(/([A-Za-z_:][\w:]*)\{([^}]*)\}/g)].map((m) => ({
    name: m[1] ?? "",
    labels: [...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1] ?? "", l[2] ?? ""]),
  }));
}

/**
 * Counters a quiet run does not show (they count events), each `function/variable/type` with
 * the source file and text that counts it.
 */
const EVENT_COUNTERS: Record<string, [string, string]> = {
  // Any error counter (the errors panel): one of them.
  "*/*/error": ["src/dest/queue.ts", 'inc("Poller", "envelopeFlush", "error")'],
  // Netlinker or NetlinkerIoUring (a regex in the query): receives that timed out.
  "*/Timeout/count": ["src/poll/netlink_counts.ts", 'add("Timeout", d.recvTimeouts'],
  "delete/delete/counter": ["src/netns/registry.ts", 'inc("delete", "delete", "counter")'],
  "netNamespaceInstance/open/error": [
    "src/netns/registry.ts",
    'inc("netNamespaceInstance", "open", "error")',
  ],
  "destQueue/retries/count": ["src/dest/queue.ts", 'inc(FN, "retries", "count")'],
  "destQueue/spooled/rows": ["src/dest/queue.ts", 'this.count("spooled"'],
};

Deno.test({
  name:
    "Grafana dashboard: every metric its queries use is on the /metrics of a running daemon, with the labels they select",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dash = JSON.parse(await Deno.readTextFile(DASHBOARD)) as {
      panels: { title: string; targets?: { expr: string }[] }[];
      templating: { list: { query?: unknown }[] };
    };
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.ok(exprs.length >= 20);
    const titles = dash.panels.map((p) => p.title.toLowerCase()).join("\n");
    for (
      const topic of ["polls", "sockets", "duration", "flushes", "errors", "backlog", "namespaces"]
    ) {
      assert.ok(titles.includes(topic), `no panel about ${topic}`);
    }
    for (const v of dash.templating.list) {
      const q = get(v, "query.query");
      if (typeof q === "string") exprs.push(q.replace(/^label_values\(([^,]+),.*$/, "$1"));
    }

    // A daemon with a network destination (the delivery queue's gauges), into a TCP receiver.
    const receiver = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const draining = (async () => {
      for await (const conn of receiver) {
        void conn.readable.pipeTo(new WritableStream()).catch(() => {});
      }
    })().catch(() => {});
    const port = freePort();
    const d = daemon(`tcp:127.0.0.1:${receiver.addr.port}`, "protobufList", [
      "-promListen",
      `127.0.0.1:${port}`,
    ]);
    let text = "";
    try {
      await morePolls(d, 3, 0);
      await until("a scrape with the queue's gauges", async () => {
        text = (await scrape(port)).text;
        return text.includes("xtcp_dest_queue_rows{");
      });
    } finally {
      await stopDaemon(d);
      receiver.close();
      await draining;
    }
    const samples = text.split("\n").filter((l) => l && !l.startsWith("#"));
    // Names declared (# TYPE: a family with no sample yet, e.g. the gRPC counters before any
    // call) or sampled (a summary's _sum and _count).
    const names = new Set([
      ...samples.map((l) => l.replace(/[{ ].*$/, "")),
      ...[...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? ""),
    ]);
    for (const expr of exprs) {
      for (const name of metricNames(expr)) {
        assert.ok(names.has(name), `${name} (in ${expr}) is not on /metrics`);
      }
      for (const sel of selectors(expr)) {
        const exact = sel.labels.filter(([k]) => k !== "instance");
        const found = samples.some((l) =>
          l.startsWith(`${sel.name}{`) && exact.every(([k, v]) => l.includes(`${k}="${v}"`))
        );
        if (found || !exact.length) continue;
        // Not seen in a quiet run: it must be a counter the daemon counts on events.
        const fn = exact.find(([k]) => k === "function")?.[1] ?? "*";
        const variable = exact.find(([k]) => k === "variable")?.[1] ?? "*";
        const type = exact.find(([k]) => k === "type")?.[1] ?? "count";
        const key = `${fn}/${variable}/${type}`;
        const where = EVENT_COUNTERS[key];
        assert.ok(where, `${sel.name} ${key} (in ${expr}) is not on /metrics`);
        const code = await Deno.readTextFile(`${ROOT}${where[0]}`);
        assert.ok(code.includes(where[1]), `${key}: ${where[0]} does not count it`);
      }
    }
  },
});
