/**
 * A namespace registry over exactly the given bind-mounted namespaces (no discovery): a poller
 * built on it polls those and nothing else of the host.
 *
 * @module
 */
import { defaultHome, openNetlinkSocketIn } from "../../ffi/netns.ts";
import { NamespaceRegistry } from "../../src/netns/registry.ts";
import type { Counters, Logger } from "../../src/util/log.ts";

/** A registry holding `/run/netns/<name>` for each of `names`, each with its netlink socket. */
export function registryOver(names: string[], log: Logger, counters: Counters): NamespaceRegistry {
  const registry = new NamespaceRegistry({
    home: defaultHome(),
    selfInode: 0n,
    rcvTimeoutMs: 10_000,
    log,
    counters,
  });
  for (const name of names) {
    const path = `/run/netns/${name}`;
    const inode = BigInt(Deno.statSync(path).ino ?? 0);
    registry.states.set(inode, {
      info: { inode, name, path },
      socket: openNetlinkSocketIn(path, { rcvTimeoutMs: 10_000 }),
    });
  }
  return registry;
}
