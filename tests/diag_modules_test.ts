/**
 * A kernel without inet_diag and tcp_diag answers the dump with ENOENT: the error names the
 * missing modules and how to load them, on the real replies of Debian's 6.1 and 6.12 kernels
 * booted without them (tests/captures/no_diag_modules, made by tests/kernels/make_captures.ts).
 */
import assert from "node:assert/strict";
import { decodeCapture } from "../src/netlink/capture.ts";
import { DIAG_MODULES, missingDiagModulesHint } from "../src/netlink/diag_modules.ts";
import { NetlinkError } from "../src/netlink/errors.ts";
import { OWN_CAPTURE_DIR } from "./support/fixtures.ts";

Deno.test("the hint names both modules, the modprobe command and a modules-load.d file", () => {
  const hint = missingDiagModulesHint();
  assert.deepEqual(DIAG_MODULES, ["inet_diag", "tcp_diag"]);
  assert.ok(hint.includes("`modprobe inet_diag tcp_diag`"), hint);
  assert.match(hint, /\/etc\/modules-load\.d\/\S+\.conf listing inet_diag and tcp_diag/);
  assert.equal(hint, hint.trim());
});

Deno.test("NetlinkError carries the hint for ENOENT only, with its fields unchanged", () => {
  const e = new NetlinkError(2, "ENOENT", "NLMSG_ERROR");
  assert.equal(e.errno, 2);
  assert.equal(e.code, "ENOENT");
  assert.equal(e.where, "NLMSG_ERROR");
  assert.equal(
    e.message,
    `Kernel answered the dump with NLMSG_ERROR: ENOENT (errno 2): ${missingDiagModulesHint()}`,
  );
  for (const [errno, code] of [[1, "EPERM"], [22, "EINVAL"], [16, "EBUSY"]] as const) {
    const other = new NetlinkError(errno, code, "NLMSG_DONE");
    assert.equal(
      other.message,
      `Kernel answered the dump with NLMSG_DONE: ${code} (errno ${errno})`,
    );
  }
});

const dir = `${OWN_CAPTURE_DIR}/no_diag_modules`;
const captures = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".pcap"))
  .map((e) => e.name).sort();

Deno.test("the captured ENOENT replies of Debian's 6.1 and 6.12 decode to the hint", () => {
  assert.deepEqual(captures, ["6_1.pcap", "6_12.pcap"]);
  for (const name of captures) {
    const path = `${dir}/${name}`;
    const s = decodeCapture(Deno.readFileSync(path), path, -1, () => {});
    assert.equal(s.stats.sockets, 0, name);
    assert.equal(s.stats.requests, 1, `${name}: the daemon's first request`);
    assert.equal(s.kernelErrors.length, 1, name);
    const [e] = s.kernelErrors;
    assert.ok(e instanceof NetlinkError);
    assert.equal(e.errno, 2, name);
    assert.equal(e.where, "NLMSG_ERROR", name);
    assert.ok(e.message.endsWith(`: ${missingDiagModulesHint()}`), e.message);
  }
});
