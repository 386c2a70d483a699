/**
 * The small pure helpers of src/util: Go durations both ways, HOST:PORT and listen addresses,
 * varints against protobuf's own reader. Pure: no socket, no root.
 */
import assert from "node:assert/strict";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { parseListen, splitHostPort } from "../src/util/address.ts";
import { durationMs, formatDuration, msToDuration, parseDuration } from "../src/util/duration.ts";
import {
  encodeVarint,
  readVarint,
  varint32,
  varint64,
  VarintError,
  varintSize,
} from "../src/util/varint.ts";

Deno.test("Go durations parse to milliseconds; anything else is refused naming the text", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["0s", 0],
    ["10s", 10_000],
    ["500ms", 500],
    ["1m30s", 90_000],
    ["6h", 21_600_000],
    ["1.5s", 1500],
    [".5s", 500],
    ["250us", 0.25],
    ["250µs", 0.25],
    ["1000000ns", 1],
    ["1h2m3s4ms", 3_723_004],
    [" 2s ", 2000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  for (const bad of ["", "10", "s", "10x", "1m 30s", "-1s", "1.2.3s", "10S", "1d"]) {
    assert.throws(
      () => parseDuration(bad),
      (e: unknown) =>
        e instanceof RangeError && e.message === `Invalid duration "${bad}": ` +
            "use Go syntax such as 10s, 500ms, 1m30s",
      JSON.stringify(bad),
    );
  }
});

Deno.test("durations format back in the largest whole unit and survive a protobuf round trip", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [250, "250ms"],
    [1000, "1s"],
    [1500, "1.5s"],
    [60_000, "1m"],
    [90_000, "90s"],
    [7_200_000, "2h"],
  ];
  for (const [ms, text] of cases) {
    assert.equal(formatDuration(ms), text, String(ms));
    assert.equal(parseDuration(text), ms, text);
  }
  for (const ms of [0, 1, 999, 1000, 1500, 86_400_000, 0.5]) {
    const d = msToDuration(ms);
    assert.ok(d.nanos >= 0 && d.nanos < 1e9, `nanos in range for ${ms}`);
    const wire = fromBinary(DurationSchema, toBinary(DurationSchema, d));
    assert.equal(durationMs(wire), ms, String(ms));
  }
  assert.deepEqual([msToDuration(1500).seconds, msToDuration(1500).nanos], [1n, 500_000_000]);
  assert.equal(durationMs(undefined), 0);
});

Deno.test("HOST:PORT splits IPv4, names, bracketed and bare IPv6; bad shapes name the text", () => {
  const cases: [string, string, number][] = [
    ["127.0.0.1:9000", "127.0.0.1", 9000],
    ["kafka.local:9092", "kafka.local", 9092],
    ["[::1]:4222", "::1", 4222],
    ["[fe80::1%eth0]:80", "fe80::1%eth0", 80],
    ["::1:4222", "::1", 4222], // a bare literal: the port after the last colon
    ["//nats:4222", "nats", 4222],
    ["h:0", "h", 0],
    ["h:65535", "h", 65535],
  ];
  for (const [text, host, port] of cases) {
    assert.deepEqual(splitHostPort(text), { host, port }, text);
  }
  for (const bad of ["", "host", "host:", ":9088", "[::1]", "[::1:80", "h:port", "h:-1"]) {
    assert.throws(
      () => splitHostPort(bad),
      (e: unknown) =>
        e instanceof RangeError && e.message === `Not HOST:PORT: "${bad}" (IPv6 as [addr]:port)`,
      JSON.stringify(bad),
    );
  }
  assert.throws(
    () => splitHostPort("h:65536"),
    /^RangeError: Port out of range: "h:65536": must be at most 65535$/,
  );
  assert.deepEqual(splitHostPort(":9088", true), { host: "", port: 9088 });
});

Deno.test("listen addresses: :PORT is every IPv4 address, a host is kept, a bad one refused", () => {
  assert.deepEqual(parseListen(":9088"), { hostname: "0.0.0.0", port: 9088 });
  assert.deepEqual(parseListen("127.0.0.1:0"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListen("[::1]:9088"), { hostname: "::1", port: 9088 });
  assert.throws(() => parseListen("9088"), /Not HOST:PORT: "9088"/);
});

Deno.test("varints: every width written and read back, sizes exact, damage refused", () => {
  const values = [0, 1, 127, 128, 300, 16_383, 16_384, 2 ** 21, 2 ** 28, 2 ** 32 - 1];
  for (const v of values) {
    const bytes = encodeVarint(v);
    assert.equal(bytes.length, varintSize(v), String(v));
    const o = new Uint8Array(5);
    assert.equal(varint32(o, 0, v), bytes.length, String(v));
    assert.deepEqual(o.subarray(0, bytes.length), bytes, String(v));
    assert.deepEqual(readVarint(bytes, 0), [v, bytes.length], String(v));
    // The same value as protobuf's uint32 field 1 (tag 0x08): the reference reader agrees.
    const msg = new Uint8Array([0x08, ...bytes]);
    const seconds = fromBinary(DurationSchema, msg).seconds; // Duration.seconds is field 1
    assert.equal(seconds, BigInt(v), String(v));
  }
  assert.deepEqual([...encodeVarint(300)], [0xac, 0x02]);
  // 64-bit from two halves: 2^32, 2^35, 2^53 - 1, 2^64 - 1.
  const halves: [number, number, bigint][] = [
    [0, 1, 1n << 32n],
    [0, 8, 1n << 35n],
    [0xffffffff, 0x1fffff, (1n << 53n) - 1n],
    [0xffffffff, 0xffffffff, (1n << 64n) - 1n],
  ];
  for (const [lo, hi, big] of halves) {
    const o = new Uint8Array(11);
    o[0] = 0x08;
    const end = varint64(o, 1, lo, hi);
    const got = fromBinary(DurationSchema, o.subarray(0, end)).seconds;
    assert.equal(BigInt.asUintN(64, got), big, big.toString());
  }
  assert.deepEqual(readVarint(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]), 0), [
    2 ** 46 - 1,
    7,
  ]);
  assert.throws(
    () => readVarint(new Uint8Array([0x80, 0x80]), 0),
    (e: unknown) =>
      e instanceof VarintError && e.message === "Truncated varint: varint at offset 0",
  );
  assert.throws(() => readVarint(new Uint8Array([1, 0xac, 0x02]), 1, 2), /Truncated varint/);
  assert.throws(
    () => readVarint(new Uint8Array(9).fill(0xff), 0),
    (e: unknown) => e instanceof VarintError && /Varint too long/.test(e.message),
  );
});
