/**
 * The supporting tools, each run as its `deno.json` task runs it (its own narrow permissions):
 * `ns` (discovery only, its own metrics) watching `nstest` (namespace churn with loopback
 * traffic) in a mount namespace of their own, so that only the namespaces this test makes are
 * seen; `xtcp2_kafka_client` reading what the daemon produced to librdkafka's mock broker.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { scrape } from "./support/daemon.ts";
import {
  account,
  children,
  daemon,
  morePolls,
  spawnIsolated,
  stopDaemon,
} from "./support/delivery.ts";
import { quietKafkajsTimers } from "../src/dest/kafka.ts";
import { RDKAFKA, startMockKafka } from "./support/kafka_mock.ts";
import { freePort, taskArgv as taskFlags, until } from "./support/run.ts";

const dec = new TextDecoder();

/** argv of a deno.json task (its own permission flags), followed by `args`. */
function taskArgv(task: string, args: string[]): string[] {
  return [Deno.execPath(), "run", "--quiet", ...taskFlags(task), ...args];
}

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(argv[0] ?? "", {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("ns, nstest, xtcp2_kafka_client: --help with their tasks' permissions; a bad flag is an error", async () => {
  for (
    const [task, name] of [
      ["ns", "ns"],
      ["nstest", "nstest"],
      ["xtcp2_kafka_client", "xtcp2_kafka_client"],
    ]
  ) {
    const help = await run(taskArgv(task ?? "", ["--help"]));
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^Usage: ${name} `));
    const bad = await run(taskArgv(task ?? "", ["--bogus"]));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, new RegExp(`^${name}: .*bogus`));
  }
  // ns --once: one pass as JSON lines (the original's profiling flags accepted, with no effect).
  const once = await run(taskArgv("ns", ["-profile.mode", "cpu", "-pprof=false", "--once"]));
  assert.equal(once.code, 0, once.stderr);
  const found = once.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(found.some((n) => n.name === "default" && n.source === "proc"), once.stdout);
  for (const n of found) assert.match(String(n.inode), /^\d+$/);
});

/** One value of the `ns` tool's exposition. */
function value(text: string, sample: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? NaN : Number(line.split(" ")[1]);
}

Deno.test({
  name:
    "ns counts what nstest creates and deletes (by source); nstest holds loopback connections in each namespace, and removes everything at the end and at SIGTERM",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = freePort();
    // ns alone in fresh mount and PID namespaces: an empty /run/netns, only its own processes.
    const ns = spawnIsolated(
      taskArgv("ns", ["--promListen", `127.0.0.1:${port}`, "--interval", "100ms"]),
    );
    try {
      const pid = await ns.pid();
      let text = "";
      const metrics = async () => (text = (await scrape(port)).text);
      await until("ns's first scrape", async () => {
        try {
          return (await metrics()).includes("xtcp_ns_found");
        } catch {
          return false;
        }
      });
      assert.equal(value(text, 'xtcp_ns_found{source="bindmount"}'), 0);
      assert.ok(value(text, 'xtcp_ns_found{source="proc"}') >= 1); // its own ("default")

      // nstest in ns's mount and PID namespaces: its `ip netns add` bind mounts are seen by ns
      // only (and the /proc there is that of those processes).
      const inMounts = (argv: string[]) => ["nsenter", "-t", `${pid}`, "-m", "-p", "--", ...argv];
      const churn = new Deno.Command("nsenter", {
        args: inMounts(taskArgv("nstest", [
          "--initial",
          "3",
          "--sleep",
          "600ms",
          "--steps",
          "4",
          "--conns",
          "2",
          "--traffic",
          "--prefix",
          "t",
        ])).slice(1),
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const churnErr = new Response(churn.stderr).text();
      await until(
        "ns to see nstest's 3 namespaces",
        async () => value(await metrics(), 'xtcp_ns_found{source="bindmount"}') === 3,
      ).catch(async (err) => {
        try {
          churn.kill("SIGKILL");
        } catch { /* ended */ }
        throw new Error(`${(err as Error).message}; nstest said: ${await churnErr}`);
      });
      // Each namespace holds 2 established connections (4 sockets) on its loopback.
      const listed = await run(inMounts(["ls", "/run/netns"]));
      const first = listed.stdout.split("\n").find((n) => /^t-\d+-0$/.test(n)) ?? "";
      assert.ok(first, listed.stdout);
      const ss = await run(
        inMounts(["ip", "netns", "exec", first, "ss", "-tnH", "state", "established"]),
      );
      assert.equal(ss.code, 0, ss.stderr);
      assert.equal(ss.stdout.trim().split("\n").length, 4, ss.stdout);
      // The host's /run/netns never sees them.
      assert.ok(![...Deno.readDirSync("/run/netns")].some((e) => e.name === first));
      assert.equal((await churn.status).code, 0, await churnErr);
      assert.match(
        await churnErr,
        /nstest: 4 steps; created 7, deleted 7 namespaces \(2 connections each\); none left/,
      );
      await until(
        "ns to see them all gone",
        async () => value(await metrics(), 'xtcp_ns_found{source="bindmount"}') === 0,
      );
      // Every namespace but the last lived 600 ms at least (10 passes of ns); the last one is
      // removed right after it is made, possibly between two passes.
      const added = value(text, 'xtcp_ns_added_total{source="bindmount"}');
      assert.ok(added === 6 || added === 7, `added ${added}`);
      assert.equal(value(text, 'xtcp_ns_deleted_total{source="bindmount"}'), added);
      assert.equal(value(text, 'xtcp_ns_deleted_total{source="proc"}'), 0);

      // Until SIGTERM: stops cleanly, and removes what it made.
      const forever = new Deno.Command("nsenter", {
        args: inMounts(taskArgv("nstest", ["--initial", "2", "--sleep", "200ms", "--conns", "1"]))
          .slice(1),
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const foreverErr = new Response(forever.stderr).text();
      await until(
        "nstest's 2 namespaces",
        async () => value(await metrics(), 'xtcp_ns_found{source="bindmount"}') === 2,
      );
      // nsenter forks into the PID namespace: the signal goes to nstest itself.
      const nstest = children(forever.pid)[0];
      assert.ok(nstest);
      Deno.kill(nstest, "SIGTERM");
      assert.equal((await forever.status).code, 0, await foreverErr);
      assert.match(await foreverErr, /deleted (\d+) namespaces .*none left/);
      const [, created, deleted] = /created (\d+), deleted (\d+)/.exec(await foreverErr) ?? [];
      assert.equal(created, deleted);
      await until(
        "ns to see them gone",
        async () => value(await metrics(), 'xtcp_ns_found{source="bindmount"}') === 0,
      );
      assert.equal(
        value(text, 'xtcp_ns_added_total{source="bindmount"}'),
        value(text, 'xtcp_ns_deleted_total{source="bindmount"}'),
      );
      const log = await stopDaemon(ns);
      assert.match(log, /^ns: added t-\d+-0 \(inode \d+, bindmount, \/run\/netns\/t-\d+-0\)$/m);
      assert.match(log, /^ns: deleted t-\d+-0 /m);
    } finally {
      await stopDaemon(ns).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "xtcp2_kafka_client reads what the daemon produced (mock broker): the rows the daemon's account acknowledged, as counts and as JSON lines; --max; a record that is not protobufList is an error",
  ignore: (() => {
    try {
      Deno.statSync(RDKAFKA);
      return false;
    } catch {
      console.error(`SKIP: ${RDKAFKA} missing (apt install librdkafka1)`);
      return true;
    }
  })(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using mock = await startMockKafka(["xtcp-kc", "junk"]);
    const d = daemon(`kafka:${mock.bootstrap}`, "protobufList", ["-topic", "xtcp-kc"]);
    await morePolls(d, 3, 0);
    const log = await stopDaemon(d);
    const acked = account(log, "kafka").acknowledged;
    assert.ok(acked > 0, log);

    const client = (group: string, extra: string[], topic = "xtcp-kc") =>
      run(taskArgv("xtcp2_kafka_client", [
        "--brokers",
        mock.bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--fromBeginning",
        "--idle",
        "4s",
        ...extra,
      ]));
    const count = await client("count", ["--format", "count"]);
    assert.equal(count.code, 0, count.stderr);
    const m = /^(\d+) records (\d+) rows$/m.exec(count.stdout);
    assert.ok(m, count.stdout);
    assert.equal(Number(m[2]), acked);

    const json = await client("json", []);
    assert.equal(json.code, 0, json.stderr);
    const rows = json.stdout.trim().split("\n").map((l) =>
      JSON.parse(l) as Record<string, unknown>
    );
    assert.equal(rows.length, acked);
    for (const r of rows) {
      assert.equal(typeof r.hostname, "string");
      assert.ok(Number(r.inet_diag_msg_socket_source_port) >= 0);
      assert.equal(r.netns, "default");
    }

    const five = await client("max", ["--max", "5"]);
    assert.equal(five.code, 0, five.stderr);
    assert.equal(five.stdout.trim().split("\n").length, 5);
    assert.match(five.stderr, /: 5 rows: /);

    // Something else on a topic: said, and the exit status is 1.
    const { Kafka, logLevel } = await import("kafkajs");
    quietKafkajsTimers(); // kafkajs's negative-timeout warning, as the daemon does
    const producer = new Kafka({ brokers: [mock.bootstrap], logLevel: logLevel.NOTHING })
      .producer();
    await producer.connect();
    try {
      await producer.send({ topic: "junk", messages: [{ value: Buffer.from("not an envelope") }] });
    } finally {
      await producer.disconnect();
    }
    const junk = await client("junk", ["--format", "count"], "junk");
    assert.equal(junk.code, 1);
    assert.match(junk.stderr, /offset 0: not a protobufList Envelope: /);
    assert.match(junk.stdout, /^1 records 0 rows$/m);
  },
});
