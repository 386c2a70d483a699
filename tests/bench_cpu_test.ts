/**
 * The benchmarks' CPU measurement of a process (bench/daemon_run.ts procSample, cpuBetween):
 * the sum of its threads' schedstat times, against the process's own clock ticks, on a real
 * busy process; and the fall back to ticks when a thread ended between two samples.
 */
import assert from "node:assert/strict";
import { CLK_TCK, cpuBetween, type ProcSample, procSample } from "../bench/daemon_run.ts";

Deno.test("procSample/cpuBetween: a busy process's CPU time, exact, agrees with its clock ticks", async () => {
  // Busy in the shell itself (no child processes) for a few hundred ms, then asleep until it
  // is killed; it says when the busy part is over.
  const child = new Deno.Command("sh", {
    args: ["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done; exec sleep 30"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const a = await procSample(child.pid);
    const reader = child.stdout.getReader();
    await reader.read();
    reader.releaseLock();
    const b = await procSample(child.pid);
    assert.ok(a.threadNs.size >= 1, "the process's threads are read");
    const c = cpuBetween(a, b);
    assert.equal(c.exact, true, "no thread ended: the exact sum is used");
    const ticks = b.cpuMs - a.cpuMs;
    assert.ok(c.ms > 50, `a busy loop of 200,000 rounds used CPU: ${c.ms} ms`);
    // Each sample's ticks are whole ticks behind the exact time by less than one tick.
    const tick = 1000 / CLK_TCK;
    assert.ok(Math.abs(c.ms - ticks) <= 2 * tick, `exact ${c.ms} ms against ${ticks} ms of ticks`);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
});

Deno.test("cpuBetween: a thread that ended in between makes it fall back to the ticks; new threads count whole", () => {
  const sample = (cpuMs: number, threads: [number, number][]): ProcSample => ({
    cpuMs,
    userMs: 0,
    v8WorkersMs: 0,
    threadNs: new Map(threads),
    rssKb: 0,
    hwmKb: 0,
  });
  const a = sample(100, [[1, 50e6], [2, 50e6]]);
  assert.deepEqual(cpuBetween(a, sample(130, [[1, 60e6], [2, 55e6], [3, 2e6]])), {
    ms: 17,
    exact: true,
  });
  assert.deepEqual(cpuBetween(a, sample(130, [[1, 60e6]])), { ms: 30, exact: false });
  assert.deepEqual(cpuBetween(sample(100, []), sample(110, [[1, 1e6]])), {
    ms: 10,
    exact: false,
  });
});
