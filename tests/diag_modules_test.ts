/**
 * A kernel without inet_diag and tcp_diag answers the dump with ENOENT: the error names the
 * missing modules and how to load them.
 */
import assert from "node:assert/strict";
import { DIAG_MODULES, missingDiagModulesHint } from "../src/netlink/diag_modules.ts";
import { NetlinkError } from "../src/netlink/errors.ts";

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
