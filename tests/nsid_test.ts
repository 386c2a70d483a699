/**
 * `-populateNsid`: records carry the id the daemon's namespace gives theirs (RTM_GETNSID), as
 * `ip netns set NAME 42` assigned it and `ip -j netns list-id` lists it; a namespace without one
 * has none; without the flag nothing is asked.
 */
import assert from "node:assert/strict";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { pollOnceJsonl } from "./support/run.ts";

async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

async function nsidsByNetns(extra: string[]): Promise<Map<string, Set<number>>> {
  const out = new Map<string, Set<number>>();
  for (const rec of (await pollOnceJsonl(extra)).records) {
    const netns = String(rec.netns);
    const set = out.get(netns) ?? new Set<number>();
    set.add(Number(rec.nsid ?? 0));
    out.set(netns, set);
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
