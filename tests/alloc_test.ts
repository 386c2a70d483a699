/**
 * The hot path (datagram walk + record encoding into the envelope) allocates nothing per socket:
 * replaying a million sockets triggers no more garbage collections than replaying none.
 */
import assert from "node:assert/strict";
import { ownCaptures } from "./support/fixtures.ts";

const PROBE = new URL("./support/alloc_probe.ts", import.meta.url).pathname;

async function scavenges(
  capture: string,
  passes: number,
  mode = "plain",
): Promise<{ gcs: number; sockets: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--v8-flags=--trace-gc",
      PROBE,
      capture,
      String(passes),
      mode,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  const text = new TextDecoder().decode(out.stdout);
  return {
    gcs: (text.match(/Scavenge|Mark-Compact|Mark-sweep/g) ?? []).length,
    sockets: Number(/sockets (\d+)/.exec(text)?.[1]),
  };
}

async function noExtraGc(mode: string): Promise<void> {
  const capture = ownCaptures()[0].pcap;
  const idle = await scavenges(capture, 0, mode);
  const busy = await scavenges(capture, 5000, mode);
  assert.ok(
    busy.sockets - idle.sockets >= 1_000_000,
    `only ${busy.sockets - idle.sockets} sockets`,
  );
  assert.ok(
    // Timers and heuristics add a collection or two; one small object per row adds ~35.
    busy.gcs <= idle.gcs + 4,
    `${busy.gcs} collections for ${busy.sockets} sockets vs ${idle.gcs} for ${idle.sockets}`,
  );
}

Deno.test("the hot path allocates nothing per socket (no extra GC over 1M sockets)", () =>
  noExtraGc("plain"));

Deno.test(
  "--changesOnly --socketOwners allocate nothing per socket either (change table, owners, close records)",
  () => noExtraGc("rows"),
);

Deno.test(
  "the hot path allocates nothing per socket either when received in the encoder's memory",
  () => noExtraGc("inplace"),
);
