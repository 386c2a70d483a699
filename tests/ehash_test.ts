/**
 * Namespaces that share the host's TCP hash table are found (their tcp_ehash_entries is
 * negative, read inside each one), and one created after net.ipv4.tcp_child_ehash_entries was
 * set has a table of its own.
 */
import assert from "node:assert/strict";
import { netnsInode, readSmallFile } from "../ffi/libc.ts";
import { defaultHome } from "../ffi/netns.ts";
import { NamespaceRegistry } from "../src/netns/registry.ts";
import { Counters, Logger } from "../src/util/log.ts";

const SYSCTL = "/proc/sys/net/ipv4/tcp_child_ehash_entries";

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stderr: "piped" }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test({
  name: "namespaces sharing the host's TCP hash table are told from those with their own",
  ignore: (() => {
    try {
      readSmallFile(SYSCTL);
      return false;
    } catch {
      console.error(`SKIP: ${SYSCTL} missing (Linux before 5.19)`);
      return true;
    }
  })(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const id = crypto.randomUUID().slice(0, 6);
    const shared = `xtcp2-ehs-${id}`;
    const own = `xtcp2-eho-${id}`;
    const before = readSmallFile(SYSCTL).trim();
    await ip("netns", "add", shared);
    try {
      Deno.writeTextFileSync(SYSCTL, "1024");
      try {
        await ip("netns", "add", own);
      } finally {
        Deno.writeTextFileSync(SYSCTL, before);
      }
      using reg = new NamespaceRegistry({
        home: defaultHome(),
        selfInode: netnsInode("/proc/self/ns/net"),
        rcvTimeoutMs: 1000,
        log: new Logger(0),
        counters: new Counters(),
      });
      reg.reconcile();
      const byName = new Map([...reg.states.values()].map((s) => [s.info.name, s]));
      assert.ok((byName.get(shared)?.ehashEntries ?? 0) < 0, "shares the host's table");
      assert.equal(byName.get(own)?.ehashEntries, 1024, "a table of its own");
      assert.ok((byName.get("default")?.ehashEntries ?? 0) > 0, "the host's own");
      const { shared: n, total } = reg.sharedTables();
      assert.ok(n >= 1 && n < total);
    } finally {
      await ip("netns", "del", shared).catch(() => {});
      await ip("netns", "del", own).catch(() => {});
    }
  },
});
