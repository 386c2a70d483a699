/**
 * Makes a capture of this project's own: a namespace with loopback connections (IPv4 and IPv6),
 * one poll of the real daemon with `--writeFiles` (nlmon-style pcap of every datagram sent and
 * received), and right after it `ss -tinmeaH` in the same namespace.
 *
 *   deno run -A tests/captures/make.ts NAME [--conns 100]
 *
 * writes tests/captures/NAME.pcap, NAME.ss and NAME.json (kernel, date, tolerance for the
 * time-dependent lastsnd/lastrcv/lastack, which move between the two reads).
 */
import { parseArgs } from "node:util";
import { startLoad } from "../support/loadgen/loadgen.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { conns: { type: "string", default: "100" } },
  allowPositionals: true,
});
const name = positionals[0];
if (!name) {
  console.error("usage: make.ts NAME [--conns N]");
  Deno.exit(2);
}
const dir = new URL(".", import.meta.url).pathname;
const tmp = Deno.makeTempDirSync();
try {
  await using load = await startLoad({
    conns: Number(values.conns),
    ipv6Fraction: 0.5,
    bytes: 1000,
  });
  const main = new URL("../../src/cmd/xtcp2.ts", import.meta.url).pathname;
  const t0 = Date.now();
  const run = await new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      load.netns,
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-ffi",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-net",
      "--allow-sys=hostname",
      main,
      "-maxLoops",
      "1",
      "-pollJitterPct",
      "0",
      "-dest",
      "null",
      "-deserializers",
      "all",
      "-writeFiles",
      "1000",
      "-capturePath",
      `${tmp}/`,
    ],
    stderr: "inherit",
  }).output();
  if (!run.success) throw new Error("xtcp2 failed");
  const ss = await new Deno.Command("ip", {
    args: ["netns", "exec", load.netns, "ss", "-tinmeaH"],
    stdout: "piped",
  }).output();
  const elapsed = Date.now() - t0;
  const [pcap] = [...Deno.readDirSync(tmp)].filter((e) => e.name.endsWith(".pcap"));
  if (!pcap) throw new Error("the daemon wrote no capture");
  Deno.copyFileSync(`${tmp}/${pcap.name}`, `${dir}${name}.pcap`);
  Deno.writeFileSync(`${dir}${name}.ss`, ss.stdout);
  Deno.writeTextFileSync(
    `${dir}${name}.json`,
    JSON.stringify(
      {
        kernel: Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim(),
        date: new Date().toISOString(),
        conns: Number(values.conns),
        command:
          "xtcp2 -maxLoops 1 -dest null -deserializers all -writeFiles 1000; then ss -tinmeaH",
        lastTolMs: elapsed + 1000,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`wrote ${dir}${name}.{pcap,ss,json} (${elapsed} ms between the two reads)`);
} finally {
  Deno.removeSync(tmp, { recursive: true });
}
