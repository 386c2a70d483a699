/**
 * Namespaces of the whole host: 20 namespaces with live connections appear with the right names
 * and socket counts and disappear with their fds closed; Docker-style bind mounts are named from
 * the mount; an anonymous namespace (unshare -n, nothing bind-mounted) is found.
 */
import assert from "node:assert/strict";
import { netnsInode } from "../ffi/libc.ts";
import { defaultHome } from "../ffi/netns.ts";
import { type Load, startLoad } from "./support/loadgen/loadgen.ts";
import { Counters, Logger } from "../src/util/log.ts";
import { Dumper, type DumpSink } from "../src/netlink/dump.ts";
import { NamespaceRegistry } from "../src/netns/registry.ts";

// The home namespace is opened once per process (and stays open): before any fd is counted.
defaultHome();

function fdCount(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

function registry(): NamespaceRegistry {
  return new NamespaceRegistry({
    home: defaultHome(),
    selfInode: netnsInode("/proc/self/ns/net"),
    rcvTimeoutMs: 1000,
    log: new Logger(0),
    counters: new Counters(),
  });
}

function countSockets(reg: NamespaceRegistry, name: string): number {
  const st = [...reg.states.values()].find((s) => s.info.name === name);
  assert.ok(st, `namespace ${name} not tracked`);
  let n = 0;
  const sink: DumpSink = { onSocket: () => n++, checkpoint() {}, rollback() {} };
  new Dumper({ mask: 0, ext: 0 }).dump(st.socket, sink);
  return n;
}

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name:
    "20 namespaces with connections appear by name with their sockets, and vanish without leaking fds",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    using reg = registry();
    reg.reconcile();
    const fdsBefore = fdCount();
    const loads: Load[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        loads.push(await startLoad({ conns: 3 + i, bytes: 10, perProcess: 1000 }));
      }
      const { added } = reg.reconcile();
      assert.ok(added >= 20, `only ${added} added`);
      for (const [i, l] of loads.entries()) {
        assert.equal(countSockets(reg, l.netns), 2 * (3 + i) + l.listeners, l.netns);
      }
    } finally {
      for (const l of loads) await l.close();
    }
    const { removed } = reg.reconcile();
    assert.ok(removed >= 20, `only ${removed} removed`);
    for (const l of loads) {
      assert.ok(![...reg.states.values()].some((s) => s.info.name === l.netns));
    }
    assert.ok(fdCount() <= fdsBefore, `fds ${fdsBefore} -> ${fdCount()}`);
  },
});

Deno.test({
  name: "docker-style bind mounts are named from the mount; anonymous namespaces are found",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const id = crypto.randomUUID().slice(0, 8);
    const tmp = `xtcp2-dock-${id}`;
    const dockerName = `c0ffee${id}`;
    const dockerPath = `/run/docker/netns/${dockerName}`;
    await sh("ip", "netns", "add", tmp);
    let anon: Deno.ChildProcess | undefined;
    try {
      Deno.mkdirSync("/run/docker/netns", { recursive: true });
      Deno.writeFileSync(dockerPath, new Uint8Array());
      await sh("mount", "--bind", `/run/netns/${tmp}`, dockerPath);
      const inode = BigInt(Deno.statSync(`/run/netns/${tmp}`).ino!);
      await sh("ip", "netns", "del", tmp); // now only the docker mount holds it
      anon = new Deno.Command("unshare", { args: ["-n", "sleep", "60"] }).spawn();
      await new Promise((r) => setTimeout(r, 200));
      const anonInode = netnsInode(`/proc/${anon.pid}/ns/net`);
      using reg = registry();
      reg.reconcile();
      const docker = reg.states.get(inode);
      assert.ok(docker, "docker-mounted namespace not found");
      assert.equal(docker.info.name, dockerName);
      const a = reg.states.get(anonInode);
      assert.ok(a, "anonymous namespace not found");
      assert.equal(a.info.name, `netns:[${anonInode}]`);
      assert.equal(countSockets(reg, a.info.name), 0);
      const self = reg.states.get(netnsInode("/proc/self/ns/net"));
      assert.equal(self?.info.name, "default");
    } finally {
      anon?.kill("SIGKILL");
      await anon?.status;
      await sh("umount", dockerPath).catch(() => "");
      try {
        Deno.removeSync(dockerPath);
      } catch { /* not created */ }
      await sh("ip", "netns", "del", tmp).catch(() => "");
    }
  },
});

Deno.test({
  name:
    "a namespace that cannot be entered is logged and counted once, and the others are still polled",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const bogus = `/run/netns/xtcp2-bogus-${crypto.randomUUID().slice(0, 8)}`;
    Deno.mkdirSync("/run/netns", { recursive: true });
    Deno.writeTextFileSync(bogus, "not a namespace");
    await using load = await startLoad({ conns: 2, bytes: 10 });
    try {
      const lines: string[] = [];
      const counters = new Counters();
      using reg = new NamespaceRegistry({
        home: defaultHome(),
        selfInode: netnsInode("/proc/self/ns/net"),
        rcvTimeoutMs: 1000,
        log: new Logger(1, (l) => lines.push(l)),
        counters,
      });
      reg.reconcile();
      reg.reconcile();
      assert.equal(
        counters.get("netNamespaceInstance", "open", "error"),
        2,
        "counted at every attempt",
      );
      const logged = lines.filter((l) => l.includes(bogus));
      assert.equal(logged.length, 1, `logged once: ${lines.join("\n")}`);
      assert.match(logged[0], /cannot enter namespace .*setns failed: EINVAL/i);
      assert.equal(countSockets(reg, load.netns), 4 + load.listeners);
    } finally {
      Deno.removeSync(bogus);
    }
  },
});
