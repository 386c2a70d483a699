/**
 * Enrichment is best-effort: a daemon pointed at a Docker socket and an lldpd socket that do not
 * exist, and at an uplink interface that does not exist, still starts and polls, stays ready,
 * and counts each failure in /metrics.
 */
import assert from "node:assert/strict";
import { sample, scrape, startDaemon } from "./support/daemon.ts";
import { until } from "./support/run.ts";

Deno.test({
  name: "enrichment against absent sockets and interfaces: polls go on, failures counted",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await using d = startDaemon([
        ...["-frequency", "1s", "-timeout", "900ms", "-pollJitterPct", "0", "-dest", "null"],
        ...["-states", "listening", "-enrichRefresh", "1s"],
        ...["-enrichContainer", "-dockerSocket", `${dir}/docker.sock`, "-resolveContainerId"],
        ...["-enrichLldp", "-lldpdSocket", `${dir}/lldpd.sock`],
        ...["-enrichNic", "-uplinkInterfaces", "nosuchif0"],
      ]);
      await until("three polls", () => /poll 3:/.test(d.log()), 30_000);
      const { text } = await scrape(d.httpPort);
      const count = (fn: string, variable: string) =>
        sample(text, "xtcp_counts", `function="${fn}",variable="${variable}",type="error"`);
      // Each refresh (every second here) fails again and is counted again.
      assert.ok(count("enrichContainer", "docker") >= 2, text);
      assert.ok(count("enrichLldp", "lldpcli") >= 2, text);
      assert.ok(count("enrichNic", "read") >= 2, text);
      const ready = await fetch(`http://127.0.0.1:${d.httpPort}/readyz`);
      await ready.body?.cancel();
      assert.equal(ready.status, 200);
      // Said once each, not at every refresh.
      for (const re of [/Container enrichment: /g, /LLDP enrichment: /g, /NIC enrichment: /g]) {
        assert.equal(d.log().match(re)?.length, 1, d.log());
      }
      assert.equal((await d.stop()).code, 0, d.log());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
