/**
 * Runs the per-socket benchmarks and rewrites the README's performance section (between the
 * `perf:begin` and `perf:end` markers) with the table, the machine, the kernel and the date.
 * The table is never edited by hand: `deno task bench:report` regenerates it.
 */
import { machineLine, rewriteReadmeSection } from "./machine.ts";

interface BenchResult {
  name: string;
  results: { ok?: { avg: number; p75: number; n: number } }[];
}

const cmd = new Deno.Command(Deno.execPath(), {
  args: ["bench", "--allow-read", "--allow-env=XTCP2_FIXTURES", "--json", "bench/decode_bench.ts"],
  stdout: "piped",
  stderr: "inherit",
});
const out = await cmd.output();
if (!out.success) {
  console.error("bench/report: deno bench failed");
  Deno.exit(1);
}
const json = JSON.parse(new TextDecoder().decode(out.stdout)) as { benches: BenchResult[] };

const rows: string[] = [];
let parseNs = 0;
for (const b of json.benches) {
  const ok = b.results[0]?.ok;
  const m = /^(.*) x(\d+)$/.exec(b.name);
  if (!ok || !m) continue;
  const perSocket = ok.avg / Number(m[2]);
  if (rows.length === 0) parseNs = perSocket;
  rows.push(
    `| ${m[1]} | ${perSocket.toFixed(0)} | ${(perSocket / parseNs).toFixed(1)}× | ${m[2]} |`,
  );
}
const section = await rewriteReadmeSection(
  "perf",
  [
    await machineLine(),
    "Replay of the captured dumps (kernels 4.19–6.10 and this project's captures), all decoders on,",
    "mean of `deno bench` iterations, each a pass over every socket of the corpus.",
    "",
    "| path | ns/socket | vs parse | sockets/pass |",
    "| --- | ---: | ---: | ---: |",
    ...rows,
  ].join("\n"),
  "bench:report",
);
console.log(section);
