/**
 * Remakes this project's captures of Debian's kernels (the same boots as tests/kernels_test.ts):
 *
 *   deno run -A tests/kernels/make_captures.ts
 *
 * For each kernel, writes tests/captures/<capture>.{pcap,ss,json} (the daemon's `-writeFiles`
 * capture of a namespace with 200 loopback connections and the `ss -tinmeaH` text taken while
 * the daemon ran) and tests/captures/no_diag_modules/<label>.pcap (the dump a kernel without
 * inet_diag and tcp_diag answered with ENOENT). Each is checked before it is written.
 *
 * @module
 */
import { OWN_CAPTURE_DIR } from "../support/fixtures.ts";
import { bootAll, checkCapture, checkEnoentCapture, finished, prepare } from "./suite.ts";

const prepared = await prepare();
if (typeof prepared === "string") {
  console.error(`make_captures: cannot boot the kernels: ${prepared}`);
  Deno.exit(1);
}
let failed = false;
for (const pending of bootAll(prepared, ["autoload", "nomodprobe"])) {
  const b = await pending;
  const k = b.tree.spec;
  try {
    const r = finished(b);
    const bad = r.checks.filter((c) => !c.ok);
    if (bad.length > 0) throw new Error(bad.map((c) => `${c.name}: ${c.error}`).join("\n"));
    if (b.mode === "autoload") {
      const { sockets } = checkCapture(b);
      for (const ext of ["pcap", "ss", "json"]) {
        Deno.copyFileSync(`${b.boot.out}/capture.${ext}`, `${OWN_CAPTURE_DIR}/${k.capture}.${ext}`);
      }
      console.log(`wrote tests/captures/${k.capture}.{pcap,ss,json} (${sockets} sockets)`);
    } else {
      checkEnoentCapture(`${b.boot.out}/enoent.pcap`);
      const dir = `${OWN_CAPTURE_DIR}/no_diag_modules`;
      Deno.mkdirSync(dir, { recursive: true });
      const name = `${k.label.replace(".", "_")}.pcap`;
      Deno.copyFileSync(`${b.boot.out}/enoent.pcap`, `${dir}/${name}`);
      console.log(`wrote tests/captures/no_diag_modules/${name}`);
    }
  } catch (err) {
    failed = true;
    console.error(`make_captures: ${k.label} ${b.mode}: ${(err as Error).message}`);
  }
}
Deno.exit(failed ? 1 : 0);
