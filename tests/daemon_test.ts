/**
 * The real daemon process: exact envelope flush thresholds (rows and bytes) with no row lost,
 * SIGTERM shutdown, overrunning polls skipping ticks, and namespace churn while polling.
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { spawnXtcp2, xtcp2Argv } from "./support/run.ts";

function spawn(args: string[], netns?: string): Deno.ChildProcess {
  return spawnXtcp2(args, netns ? { netns } : {});
}

async function run(args: string[], netns?: string): Promise<{ code: number; stderr: string }> {
  const child = spawn(args, netns);
  const [status, , err] = await Promise.all([
    child.status,
    new Response(child.stdout).arrayBuffer(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, stderr: err };
}

function framedEnvelopes(
  dir: string,
): { rows: number; size: number; lastRow: number; netns: string[] }[] {
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".binpb"))
    .sort();
  return files.map((f) => {
    const b = Deno.readFileSync(`${dir}/${f}`);
    let len = 0;
    let i = 0;
    for (let shift = 0;; i++, shift += 7) {
      len += (b[i] & 0x7f) * 2 ** shift;
      if ((b[i] & 0x80) === 0) break;
    }
    assert.equal(len, b.length - i - 1, `${f}: one framed envelope per file`);
    const env = fromBinary(EnvelopeSchema, b.subarray(i + 1));
    // Size of the last row as framed in the envelope: tag + varint(len) + row.
    let lastRow = 0;
    for (let at = i + 1; at < b.length;) {
      let rl = 0;
      let j = at + 1;
      for (let shift = 0;; j++, shift += 7) {
        rl += (b[j] & 0x7f) * 2 ** shift;
        if ((b[j] & 0x80) === 0) break;
      }
      lastRow = j + 1 + rl - at;
      at = j + 1 + rl;
    }
    return { rows: env.row.length, size: len, lastRow, netns: env.row.map((r) => r.netns) };
  });
}

Deno.test({
  name:
    "envelopes flush at exactly --envelopeFlushRows and just past --envelopeFlushBytes; no row is lost",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 600, bytes: 10 });
    // + the daemon's own gRPC and HTTP listeners, which run in that namespace too.
    const expected = 1200 + load.listeners + 2;
    for (const [flag, value] of [["-envelopeFlushRows", "100"], ["-envelopeFlushBytes", "30000"]]) {
      const dir = Deno.makeTempDirSync();
      try {
        const r = await run([
          "-maxLoops",
          "1",
          "-pollJitterPct",
          "0",
          "-dest",
          `file:${dir}/out`,
          "-marshal",
          "protobufList",
          flag,
          value,
        ], load.netns);
        assert.equal(r.code, 0, r.stderr);
        const envs = framedEnvelopes(dir);
        assert.ok(envs.length >= 3, `${flag}: ${envs.length} envelopes`);
        const own = envs.flatMap((e) => e.netns).filter((n) => n === "default").length;
        assert.equal(own, expected, `${flag}: every socket of the namespace is in some envelope`);
        for (const [k, e] of envs.slice(0, -1).entries()) {
          if (flag === "-envelopeFlushRows") assert.equal(e.rows, 100, `envelope ${k}`);
          else {
            assert.ok(e.size > 30000, `envelope ${k}: ${e.size} bytes, flushed too early`);
            assert.ok(
              e.size - e.lastRow <= 30000,
              `envelope ${k}: ${e.size} bytes, flushed too late`,
            );
          }
        }
        const summary = /poll 1: (\d+) namespaces, (\d+) sockets, \d+ bytes in (\d+) flushes/.exec(
          r.stderr,
        );
        assert.ok(summary, r.stderr);
        assert.equal(
          Number(summary[2]),
          envs.reduce((a, e) => a + e.rows, 0),
          "rows written = sockets polled",
        );
        assert.equal(Number(summary[3]), envs.length);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    }
  },
});

for (const extra of [[], ["-pipeline"]]) {
  Deno.test({
    name: `SIGTERM${
      extra.length ? " (--pipeline)" : ""
    }: the daemon flushes, closes its destination and exits 0 within 5 s`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const dir = Deno.makeTempDirSync();
      try {
        const child = spawn([
          "-frequency",
          "1h",
          "-timeout",
          "30s",
          "-pollJitterPct",
          "0",
          "-dest",
          `file:${dir}/out.jsonl`,
          "-marshal",
          "jsonl",
          ...extra,
        ]);
        const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
        let err = "";
        while (!/poll 1: .* (\d+) sockets/.test(err)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`daemon exited: ${err}`);
          err += value;
        }
        const t0 = performance.now();
        child.kill("SIGTERM");
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          err += value;
        }
        const status = await child.status;
        await child.stdout.cancel();
        const ms = performance.now() - t0;
        assert.equal(status.code, 0, err);
        assert.ok(ms < 5000, `took ${ms} ms`);
        assert.match(err, /SIGTERM caught/);
        const sockets = Number(/poll 1: .* (\d+) sockets/.exec(err)![1]);
        const lines = Deno.readTextFileSync(`${dir}/out.jsonl`).trimEnd().split("\n");
        assert.equal(lines.length, sockets);
        for (const l of lines) JSON.parse(l);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "a poll that overruns the interval skips ticks instead of queueing them",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 3000, bytes: 10 });
    const t0 = performance.now();
    const r = await run([
      "-maxLoops",
      "3",
      "-frequency",
      "20ms",
      "-timeout",
      "10ms",
      "-pollJitterPct",
      "0",
      "-dest",
      "null",
      "-marshal",
      "jsonl",
    ], load.netns);
    const ms = performance.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    const polls = [...r.stderr.matchAll(/poll (\d+): .* ([\d.]+) ms/g)].map((m) => Number(m[2]));
    assert.equal(polls.length, 3, r.stderr);
    assert.ok(polls.every((p) => p > 20), `polls must overrun the 20 ms interval: ${polls}`);
    const skipped = [...r.stderr.matchAll(/(\d+) tick\(s\) skipped/g)].map((m) => Number(m[1]));
    assert.ok(skipped.length >= 2 && skipped.every((n) => n >= 1), r.stderr);
    assert.ok(ms < 10_000, `took ${ms} ms`);
  },
});

Deno.test({
  name:
    "churn: 200 namespaces come and go while polling every 200 ms; no crash, no fd growth, no live namespace missed",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stable = await startLoad({ conns: 1, bytes: 10 });
    const perPoll = 2 + stable.listeners;
    const dir = Deno.makeTempDirSync();
    const child = spawn([
      "-frequency",
      "200ms",
      "-timeout",
      "150ms",
      "-pollJitterPct",
      "0",
      "-dest",
      `file:${dir}/out.jsonl`,
      "-marshal",
      "jsonl",
    ]);
    const errText = new Response(child.stderr).text();
    try {
      await new Promise((r) => setTimeout(r, 600));
      const daemonPid = child.pid;
      const fds = () => [...Deno.readDirSync(`/proc/${daemonPid}/fd`)].length;
      const before = fds();
      for (let i = 0; i < 200; i++) {
        const name = `xtcp2-churn-${i}-${crypto.randomUUID().slice(0, 6)}`;
        await new Deno.Command("ip", { args: ["netns", "add", name] }).output();
        if (i % 3 === 0) await new Promise((r) => setTimeout(r, 20));
        await new Deno.Command("ip", { args: ["netns", "del", name] }).output();
      }
      await new Promise((r) => setTimeout(r, 700)); // a few polls after the churn
      const after = fds();
      assert.ok(after <= before + 2, `daemon fds ${before} -> ${after}`);
      child.kill("SIGTERM");
      const status = await child.status;
      await child.stdout.cancel();
      const err = await errText;
      assert.equal(status.code, 0, err);
      const polls = [...err.matchAll(/poll (\d+): (\d+) namespaces/g)].length;
      assert.ok(polls >= 10, `only ${polls} polls:\n${err}`);
      const lines = Deno.readTextFileSync(`${dir}/out.jsonl`).trimEnd().split("\n").map((l) =>
        JSON.parse(l)
      );
      const stableRows = lines.filter((o) => o.netns === stable.netns).length;
      assert.equal(
        stableRows,
        polls * perPoll,
        `the stable namespace is in every poll (${polls} polls)`,
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a new namespace under /run/netns is picked up by the watch, without the timer or the pre-poll reconcile",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = Deno.makeTempDirSync();
    const child = spawn([
      "-frequency",
      "200ms",
      "-timeout",
      "150ms",
      "-pollJitterPct",
      "0",
      "-reconcileBeforePoll=false",
      "-reconcileFrequency",
      "0",
      "-dest",
      `file:${dir}/out.jsonl`,
      "-marshal",
      "jsonl",
      "-label",
      "L1",
      "-tag",
      "T1",
      "-location",
      "dc-test",
      "-hostname",
      "host-x",
    ]);
    const errText = new Response(child.stderr).text();
    try {
      await new Promise((r) => setTimeout(r, 500));
      await using load = await startLoad({ conns: 2, bytes: 10 }); // created after the daemon started
      await new Promise((r) => setTimeout(r, 800));
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, await errText);
      await child.stdout.cancel();
      const rows = Deno.readTextFileSync(`${dir}/out.jsonl`).trimEnd().split("\n").map((l) =>
        JSON.parse(l)
      );
      const mine = rows.filter((o) => o.netns === load.netns);
      assert.ok(
        mine.length >= 4 + load.listeners,
        `namespace ${load.netns} not polled:\n${await errText}`,
      );
      const inode = BigInt(Deno.statSync(load.nsPath).ino!);
      for (const o of mine) {
        assert.equal(o.schema_version, 1);
        assert.ok(o.daemon_version);
        assert.equal(o.hostname, "host-x");
        assert.equal(o.location, "dc-test");
        assert.equal(o.label, "L1");
        assert.equal(o.tag, "T1");
        assert.equal(BigInt(o.netns_inode), inode);
        assert.ok(Number(o.socket_fd) > 2);
        assert.ok(BigInt(o.timestamp_ns) > BigInt(Date.now() - 60_000) * 1_000_000n);
      }
      const indexes = new Set(mine.map((o) => Number(o.record_counter ?? 0)));
      assert.ok(
        indexes.has(0) && indexes.size > 1,
        "record_counter is the index within the datagram",
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "verbosity: -d 1 prints one summary line per poll on stderr, -d 0 prints nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const loud = await run([
      "-maxLoops",
      "2",
      "-frequency",
      "100ms",
      "-timeout",
      "50ms",
      "-pollJitterPct",
      "0",
      "-dest",
      "null",
    ]);
    assert.equal(loud.code, 0, loud.stderr);
    assert.equal(
      [...loud.stderr.matchAll(
        /^xtcp2: poll \d+: \d+ namespaces, \d+ sockets, \d+ bytes in \d+ flushes, [\d.]+ ms/gm,
      )].length,
      2,
      loud.stderr,
    );
    const quiet = await run([
      "-maxLoops",
      "2",
      "-frequency",
      "100ms",
      "-timeout",
      "50ms",
      "-pollJitterPct",
      "0",
      "-dest",
      "null",
      "-d",
      "0",
    ]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr.replace(/^xtcp2: WARN: missing capability.*\n/gm, ""), "");
  },
});

Deno.test({
  name: "capabilities: without CAP_NET_ADMIN the daemon refuses to start and says how to grant it",
  ignore: !(() => {
    try {
      return Deno.statSync("/usr/sbin/capsh").isFile;
    } catch {
      return false;
    }
  })(),
  async fn() {
    const cmd = xtcp2Argv(["-maxLoops", "1", "-dest", "null"])
      .map((a) => `'${a}'`).join(" ");
    const dropped = await new Deno.Command("/usr/sbin/capsh", {
      args: ["--drop=cap_net_admin,cap_sys_ptrace", "--", "-c", cmd],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(dropped.stderr);
    assert.equal(dropped.code, 1, err);
    assert.match(
      err,
      /required capabilities missing:\n {2}- CAP_NET_ADMIN: netlink inet_diag queries/,
    );
    assert.match(
      err,
      /WARN: missing capability CAP_SYS_PTRACE|AmbientCapabilities = CAP_NET_ADMIN CAP_SYS_ADMIN/,
    );
    assert.match(err, /Or \(less restricted\): run as root\./);
  },
});
