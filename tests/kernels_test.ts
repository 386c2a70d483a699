/**
 * Proof on the kernels users run: Debian 12's 6.1 (its default) and bookworm-backports' 6.12,
 * downloaded with apt (never installed on the host) and booted in QEMU with the project shared
 * over 9p (tests/kernels/). Each kernel boots twice:
 *
 * - with a modprobe in the guest: the kernel autoloads inet_diag and tcp_diag on the first dump;
 *   the collection of a fresh namespace with 200 IPv4 and IPv6 connections carrying data is
 *   exactly the socket set of `ss`, value for value, with the kernel's tcp_info length; one
 *   daemon poll covers its own, a named and an `unshare -n` namespace with the right names and
 *   counts, and its `-writeFiles` capture decodes here to exactly the sockets of the `ss` text
 *   of those namespaces;
 * - without one: the dump is answered ENOENT, and both the library's error and the daemon's
 *   poll log line name the missing modules and how to load them.
 *
 * Skipped, loudly, where QEMU or the other tools are missing or the kernels cannot be fetched.
 * Without QEMU, the committed captures of these kernels (tests/captures) still run in the
 * fixture suites; their tcp_info lengths are checked here.
 */
import assert from "node:assert/strict";
import { ownCaptures } from "./support/fixtures.ts";
import {
  bootAll,
  checkCapture,
  checkEnoentCapture,
  finished,
  prepare,
  tail,
  tcpInfoLengths,
} from "./kernels/suite.ts";
import { KERNELS } from "./kernels/vm.ts";

/** tcp_info bytes by kernel: the two booted here, and this machine's 6.18 of the first capture. */
const TCP_INFO_LEN: Record<string, number> = {
  ...Object.fromEntries(KERNELS.map((k) => [k.capture, k.tcpInfoLen])),
  loopback_6_18: 280,
};

Deno.test("kernels: each committed capture carries its kernel's tcp_info length", () => {
  const seen: string[] = [];
  for (const c of ownCaptures()) {
    const name = c.name.replace(/^own\//, "");
    const want = TCP_INFO_LEN[name];
    if (want === undefined) continue;
    const lens = tcpInfoLengths(c.pcap);
    assert.deepEqual([...lens.keys()], [want], `${name}: tcp_info lengths ${[...lens]}`);
    seen.push(`${name}: ${want} bytes`);
  }
  assert.deepEqual(seen.length, Object.keys(TCP_INFO_LEN).length, seen.join(", "));
  console.log(`tcp_info: ${seen.join(", ")}`);
});

const prepared = await prepare();
if (typeof prepared === "string") {
  console.warn(`\n!!! SKIPPING the kernel suite (Debian 6.1 and 6.12 in QEMU): ${prepared}\n`);
}

Deno.test({
  name: "kernels: Debian's 6.1 and 6.12 in QEMU, with and without modprobe",
  ignore: typeof prepared === "string",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    if (typeof prepared === "string") return;
    const t0 = performance.now();
    const boots = bootAll(prepared, ["autoload", "nomodprobe"]);
    // Every boot is awaited, even after a failure, so that no QEMU outlives the test.
    const settled = Promise.allSettled(boots);
    try {
      for (const pending of boots) {
        const b = await pending;
        const k = b.tree.spec;
        await t.step(`${k.label} ${b.mode} (${b.tree.pkg} ${b.tree.version})`, async (t) => {
          const r = finished(b);
          for (const c of r.checks) {
            await t.step(c.name, () => {
              assert.ok(c.ok, `${c.error}\n--- serial console ---\n${tail(b)}`);
            });
          }
          assert.ok(r.checks.every((c) => c.ok), "a guest check failed");
          if (b.mode === "autoload") {
            const live = r.checks.find((c) => c.name.startsWith("live:"))!.detail;
            assert.equal(live.tcpInfoLen, k.tcpInfoLen, "tcp_info length");
            const cap = checkCapture(b);
            console.log(
              `${k.label}: tcp_info ${live.tcpInfoLen} bytes; live ${live.sockets} sockets ` +
                `(${live.v4} IPv4, ${live.v6} IPv6), ${live.values} values agree with ss; ` +
                `capture ${cap.sockets} sockets, ${cap.values} values; boot ${
                  (b.boot.ms / 1000).toFixed(1)
                } s`,
            );
          } else {
            const message = checkEnoentCapture(`${b.boot.out}/enoent.pcap`);
            console.log(
              `${k.label}: without modprobe: ${message}; boot ${(b.boot.ms / 1000).toFixed(1)} s`,
            );
          }
        });
      }
    } finally {
      await settled;
    }
    console.log(
      `kernel suite: ${((performance.now() - t0) / 1000).toFixed(1)} s of boots, ${
        (prepared.ms / 1000).toFixed(1)
      } s to fetch and build`,
    );
  },
});
