/**
 * The `deno compile` flavors: the full `xtcp2` and `xtcp2_minimal`, whose module graph (what
 * `deno compile` bundles) holds none of the broker destinations: neither kafkajs nor the NATS,
 * RESP and NSQ protocols written here (nor the npm nats and ioredis clients, which no build uses). `deno compile` itself cannot run here
 * (it downloads the runtime), so the graphs are read with `deno info --json`, which is what the
 * compiler bundles, and the compile tasks are checked against the run tasks' permission flags.
 *
 * @module
 */
import assert from "node:assert/strict";
import { onlyNamespaces } from "./support/delivery.ts";
import { freePort, PERMS, V8_FLAGS } from "./support/run.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MINIMAL = `${ROOT}src/cmd/xtcp2_minimal.ts`;
const BROKER_CLIENTS = ["kafkajs", "nats", "ioredis", "snappyjs", "lz4js", "@bokuweb/zstd-wasm"];
/** Modules that are there for the broker destinations only. */
const BROKER_MODULES =
  /\/src\/(dest\/(kafka|kafka_codecs|schema_registry|nats|nsq|valkey|reply_conn|brokers|s3|s3parquet)|format\/parquet(_records)?)\.ts$/;

interface Graph {
  /** npm packages, by name without version. */
  npm: Set<string>;
  /** Local modules, by path. */
  local: string[];
}

async function graph(entry: string): Promise<Graph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { kind?: string; specifier: string; npmPackage?: string }[];
  };
  const npm = new Set<string>();
  const local: string[] = [];
  for (const m of info.modules) {
    if (m.kind === "npm" && m.npmPackage) npm.add(m.npmPackage.replace(/^(@?[^@]+)@.*$/, "$1"));
    else if (m.specifier.startsWith("file://")) local.push(new URL(m.specifier).pathname);
  }
  return { npm, local };
}

Deno.test("xtcp2_minimal's module graph has no broker destination nor client; the full one has them all", async () => {
  const minimal = await graph("src/cmd/xtcp2_minimal.ts");
  const full = await graph("src/cmd/xtcp2.ts");
  for (const c of BROKER_CLIENTS) assert.ok(!minimal.npm.has(c), `${c} is in the minimal graph`);
  // The check sees what it looks for: kafkajs and every broker module are in the full graph.
  assert.ok(full.npm.has("kafkajs"), "kafkajs is missing from the full graph");
  assert.deepEqual(minimal.local.filter((p) => BROKER_MODULES.test(p)), []);
  for (const m of ["kafka", "nats", "nsq", "valkey", "brokers", "s3parquet"]) {
    assert.ok(
      full.local.some((p) => p.endsWith(`/src/dest/${m}.ts`)),
      `${m}.ts not in the full graph`,
    );
  }
  // Everything else is the same daemon.
  assert.ok(minimal.npm.has("prom-client") && minimal.npm.has("@connectrpc/connect-node"));
  const fullLocal = new Set(full.local);
  for (const p of minimal.local) {
    if (!p.endsWith("xtcp2_minimal.ts")) assert.ok(fullLocal.has(p), `${p} only in minimal`);
  }
});

Deno.test("compile tasks: each flavor compiles its entrypoint with the run task's permission and V8 flags and the pipeline worker", async () => {
  const tasks = (JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)) as {
    tasks: Record<string, string | { command: string }>;
  }).tasks;
  const text = (name: string) => {
    const t = tasks[name];
    assert.ok(t, `no task ${name}`);
    return typeof t === "string" ? t : t.command;
  };
  const flags = (cmd: string) => cmd.split(/\s+/).filter((w) => w.startsWith("--allow-"));
  assert.deepEqual(flags(text("xtcp2")), PERMS);
  for (
    const [task, entry, out] of [
      ["compile:full", "src/cmd/xtcp2.ts", "dist/xtcp2"],
      ["compile:minimal", "src/cmd/xtcp2_minimal.ts", "dist/xtcp2_minimal"],
    ] as const
  ) {
    const cmd = text(task);
    assert.match(cmd, /^deno compile /);
    assert.deepEqual(flags(cmd), PERMS, task);
    assert.ok(cmd.includes(` ${V8_FLAGS} `), `${task}: gc between polls`);
    assert.ok(cmd.includes("--include src/poll/pipeline_worker.ts"), task);
    assert.ok(cmd.endsWith(`-o ${out} ${entry}`), task);
  }
  assert.deepEqual(flags(text("xtcp2:minimal")), PERMS);
  for (const task of ["xtcp2", "start", "xtcp2:minimal"]) {
    assert.ok(text(task).startsWith(`deno run ${V8_FLAGS} `), `${task}: gc between polls`);
  }
  for (const sub of ["compile:full", "compile:minimal", "compile:tools"]) {
    assert.ok(text("compile").includes(`deno task ${sub}`));
  }
});

Deno.test({
  name: "xtcp2_minimal polls like xtcp2, and refuses a broker destination naming the full build",
  sanitizeResources: false,
  async fn() {
    const run = (args: string[]) =>
      new Deno.Command(onlyNamespaces()[0] ?? "", {
        args: [
          ...onlyNamespaces().slice(1),
          Deno.execPath(),
          "run",
          "--quiet",
          ...PERMS,
          MINIMAL,
          "-promListen",
          `127.0.0.1:${freePort()}`,
          "-grpcPort",
          String(freePort()),
          ...args,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run(["-maxLoops", "1", "-dest", "stdout", "-marshal", "jsonl"]);
    const err = new TextDecoder().decode(ok.stderr);
    assert.equal(ok.code, 0, err);
    assert.match(err, /^xtcp2: poll 1: 1 namespaces, /m);
    for (
      const dest of [
        "kafka:127.0.0.1:9",
        "nats:127.0.0.1:9",
        "nsq:127.0.0.1:9",
        "redis:127.0.0.1:9",
      ]
    ) {
      const refused = await run(["-maxLoops", "1", "-dest", dest]);
      assert.equal(refused.code, 1);
      assert.match(
        new TextDecoder().decode(refused.stderr),
        /cannot start: destination [a-z-]+ is not in this build \(the minimal one has no broker or s3parquet destinations\): use the full xtcp2/,
      );
    }
  },
});

Deno.test("flake.nix: every binary it wraps runs its deno.json task's script with the task's permission flags", () => {
  const flake = Deno.readTextFileSync(`${ROOT}flake.nix`);
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
    string,
    string
  >;
  const bins = [...flake.matchAll(/= bin "([^"]+)"\s+"([^"]*)"\s+"([^"]+)";/g)];
  const names = bins.map((b) => b[1]);
  for (const want of ["xtcp2", "xtcp2client", "xtcp2ctl", "xtcp2_minimal", "ns", "nstest"]) {
    assert.ok(names.includes(want), `flake.nix wraps ${want}`);
  }
  for (const [, name, flags, script] of bins) {
    const task = tasks[name ?? ""] ?? tasks[(name ?? "").replace(/_minimal$/, ":minimal")];
    assert.ok(task, `a deno.json task for ${name}`);
    assert.equal(`deno run ${flags} ${script}`, task, name);
    assert.match(flake, new RegExp(`\\b${name} = app ${name};`), `${name} is an app`);
  }
});
