/**
 * `-populateNsid`: records carry the id the daemon's namespace gives theirs (RTM_GETNSID), as
 * `ip netns set NAME 42` assigned it and `ip -j netns list-id` lists it; a namespace without one
 * has none; without the flag nothing is asked.
 */
import assert from "node:assert/strict";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { freePort, xtcp2 } from "./support/run.ts";

async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

async function nsidsByNetns(extra: string[]): Promise<Map<string, Set<number>>> {
  const r = await xtcp2([
    "-maxLoops",
    "1",
    "-frequency",
    "10m",
    "-timeout",
    "5m",
    "-dest",
    "stdout",
    "-marshal",
    "jsonl",
    "-grpcPort",
    String(freePort()),
    "-promListen",
    `127.0.0.1:${freePort()}`,
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = new Map<string, Set<number>>();
  for (const line of new TextDecoder().decode(r.stdout).split("\n")) {
    if (!line) continue;
    const rec = JSON.parse(line) as { netns: string; nsid?: number };
    const set = out.get(rec.netns) ?? new Set<number>();
    set.add(rec.nsid ?? 0);
    out.set(rec.netns, set);
  }
  return out;
}

Deno.test({
  name: "-populateNsid: records carry the namespace's id, as ip netns list-id shows it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using withId = await startLoad({ conns: 5, bytes: 10 });
    await using without = await startLoad({ conns: 5, bytes: 10 });
    await ip("netns", "set", withId.netns, "42");
    const listed = JSON.parse(await ip("-j", "netns", "list-id")) as {
      nsid: number;
      name?: string;
    }[];
    assert.ok(listed.some((l) => l.nsid === 42 && l.name === withId.netns), JSON.stringify(listed));
    const on = await nsidsByNetns(["-populateNsid"]);
    assert.deepEqual([...(on.get(withId.netns) ?? [])], [42]);
    assert.deepEqual([...(on.get(without.netns) ?? [])], [0], "no id assigned: none");
    const off = await nsidsByNetns([]);
    assert.deepEqual([...(off.get(withId.netns) ?? [])], [0], "not asked without the flag");
  },
});
