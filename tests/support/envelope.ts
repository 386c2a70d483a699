/**
 * Test helpers for marshallers and destinations: an envelope of real rows (this project's first
 * own capture, decoded) and the destination options the tests use.
 *
 * @module
 */
import type { DestOptions } from "../../src/dest/destination.ts";
import { decodeCapture } from "../../src/netlink/capture.ts";
import { EnvelopeWriter } from "../../src/record/encoder.ts";
import { Stamp } from "../../src/record/stamp.ts";
import { Counters, Logger } from "../../src/util/log.ts";
import { ownCaptures } from "./fixtures.ts";

/**
 * Every socket of the 6.18 own capture (~200 rows: the UDP test's two copies make a flush of a
 * few datagrams, which the receiving socket's default buffer holds), in one envelope.
 */
export function captureEnvelope(): EnvelopeWriter {
  const env = new EnvelopeWriter();
  const stamp = new Stamp({
    hostname: "h",
    netns: "default",
    timestamp_ns: 1_732_000_000_123_456_789n,
  });
  const first = ownCaptures().find((p) => p.name === "own/loopback_6_18");
  if (!first) throw new Error("No capture loopback_6_18 in tests/captures");
  decodeCapture(Deno.readFileSync(first.pcap), first.pcap, -1, (v) => env.add(v, stamp));
  return env;
}

/** Destination options with fresh counters, silent logs and a 64 KiB file rotation. */
export function testDestOptions(marshal: string): DestOptions {
  return {
    marshal,
    topic: "xtcp",
    fileMaxBytes: 64 * 1024,
    fileMaxAgeMs: 3_600_000,
    counters: new Counters(),
    log: new Logger(0),
  };
}
