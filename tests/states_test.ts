/**
 * `--states`: ss's state names and groups, the kernel's names and masks compile to the request's
 * idiag_states, and on a live namespace the kernel then dumps exactly the sockets `ss` shows with
 * the same state filter.
 */
import assert from "node:assert/strict";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { ALL_TCP_STATES } from "../src/netlink/constants.ts";
import { idiagExt, parseDeserializers } from "../src/netlink/deserializers.ts";
import { parseStates, statesInWords, StatesSpecError } from "../src/netlink/states.ts";
import { collectOnce } from "../src/poll/collect.ts";

Deno.test("--states: names, groups, masks; unknown names say what is valid", () => {
  assert.equal(parseStates(""), ALL_TCP_STATES);
  assert.equal(parseStates("all"), ALL_TCP_STATES);
  assert.equal(parseStates("established"), 1 << 1);
  assert.equal(parseStates("ESTABLISHED, listen"), (1 << 1) | (1 << 10));
  assert.equal(parseStates("listening,time-wait"), (1 << 10) | (1 << 6));
  assert.equal(parseStates("TIME_WAIT"), 1 << 6);
  assert.equal(parseStates("0x402"), (1 << 1) | (1 << 10));
  assert.equal(parseStates("bucket"), (1 << 3) | (1 << 6));
  assert.equal(parseStates("connected") & ((1 << 10) | (1 << 7)), 0, "no listening, no closed");
  assert.equal(statesInWords(parseStates("established,listening")), "ESTABLISHED, LISTEN");
  assert.throws(() => parseStates("establishd"), StatesSpecError);
  assert.throws(() => parseStates("0x0"), /Unknown TCP state "0x0"/);
});

async function ssCount(netns: string, filter: string[]): Promise<number> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, "ss", "-tanH", ...filter],
    stdout: "piped",
  }).output();
  assert.ok(out.success);
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim()).length;
}

Deno.test({
  name: "live: the kernel dumps exactly the sockets ss shows with the same state filter",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({ conns: 300, ipv6Fraction: 0.5, bytes: 10 });
    const mask = parseDeserializers("default");
    const count = (states: string) => {
      let n = 0;
      const sink = { onSocket: () => n++, checkpoint() {}, rollback() {} };
      collectOnce(
        { nsPath: load.nsPath, mask, ext: idiagExt(mask), states: parseStates(states) },
        sink,
      );
      return n;
    };
    const est = count("established");
    assert.equal(est, await ssCount(load.netns, ["state", "established"]));
    assert.ok(est >= 600, `${est} established`);
    const listening = count("listening");
    assert.equal(listening, await ssCount(load.netns, ["state", "listening"]));
    assert.equal(listening, load.listeners);
    assert.equal(count("established,listening"), est + listening);
    assert.equal(count("all"), await ssCount(load.netns, []));
  },
});
