/**
 * Collections between polls (src/util/idle_gc.ts), in a deno of their own with and without
 * `--expose-gc`: with it, a young generation filled with garbage is collected at once (V8's trace
 * names the collection "testing": asked for, not forced by an allocation), and one just collected
 * is left alone; without it nothing is collected.
 */
import assert from "node:assert/strict";
import { V8_FLAGS } from "./support/run.ts";

const MODULE = new URL("../src/util/idle_gc.ts", import.meta.url).href;
const SCRIPT = `
import { canCollect, collectYoung } from "${MODULE}";
const keep = [];
for (let i = 0; i < 20000; i++) keep.push({ i, s: "x" + i }); // young, alive
const first = collectYoung(64 * 1024);
const again = collectYoung(64 * 1024);
console.log(JSON.stringify({ canCollect, first, again, kept: keep.length }));
`;

async function run(v8: string): Promise<{ answer: Record<string, unknown>; trace: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", v8, SCRIPT],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `deno eval failed: ${new TextDecoder().decode(out.stderr)}`);
  const lines = text.trim().split("\n");
  const answer = lines.find((l) => l.startsWith("{"));
  assert.ok(answer, `no answer in:\n${text}`);
  return { answer: JSON.parse(answer), trace: lines.filter((l) => l !== answer).join("\n") };
}

Deno.test("idle gc: with --expose-gc a young generation in use is collected, one just collected is not", async () => {
  const { answer, trace } = await run(`${V8_FLAGS},--trace-gc`);
  assert.deepEqual(answer, { canCollect: true, first: true, again: false, kept: 20000 });
  assert.match(trace, /Scavenge[^\n]*testing/, "a scavenge asked for, in V8's trace");
});

Deno.test("idle gc: without --expose-gc nothing is collected", async () => {
  const { answer } = await run("--v8-flags=--trace-gc");
  assert.deepEqual(answer, { canCollect: false, first: false, again: false, kept: 20000 });
});
