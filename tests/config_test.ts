/**
 * Configuration: the original's flags and environment variables, precedence defaults < flags <
 * env < XTCP_CONFIG_JSON, validation errors naming flag/value/rule. Pure (the binary's handling
 * of them, exit 2 and --conf, is in cli_test.ts).
 */
import assert from "node:assert/strict";
import { checkCapabilities } from "../src/daemon/caps.ts";
import { toJsonString } from "@bufbuild/protobuf";
import { XtcpConfigSchema } from "../src/gen/xtcp_config/v1/xtcp_config_pb.ts";
import { ConfigError } from "../src/config/config_error.ts";
import { decoderMask } from "../src/config/derive.ts";
import { FLAGS } from "../src/config/flags.ts";
import { defaultConfig, loadConfig } from "../src/config/load.ts";
import { validateConfig } from "../src/config/validate.ts";
import { durationMs } from "../src/util/duration.ts";
import { idiagExt } from "../src/netlink/deserializers.ts";

Deno.test("defaults follow the reference", () => {
  const c = defaultConfig();
  assert.equal(durationMs(c.pollFrequency), 10_000);
  assert.equal(durationMs(c.pollTimeout), 5_000);
  assert.equal(c.nlTimeoutMilliseconds, 1000n);
  assert.equal(c.nlmsgSeq, 666);
  assert.equal(c.packetSizeMply, 8);
  assert.equal(c.marshalTo, "protobufList");
  assert.equal(c.pollJitterPct, 20);
  assert.equal(durationMs(c.reconcileFrequency), 6 * 3600_000);
  assert.equal(c.reconcileBeforePoll, true);
  assert.equal(c.grpcPort, 8889);
  assert.equal(c.topic, "xtcp");
  assert.equal(idiagExt(decoderMask(c)), 0xfe);
  assert.deepEqual(validateConfig(c), []);
  assert.ok(FLAGS.length > 60);
});

Deno.test("flags (single or double dash, = or space) < environment < XTCP_CONFIG_JSON", () => {
  const a = loadConfig([
    "-frequency",
    "30s",
    "--timeout=10s",
    "-label",
    "fromflag",
    "-reconcileBeforePoll=false",
  ], {});
  assert.equal(durationMs(a.config.pollFrequency), 30_000);
  assert.equal(durationMs(a.config.pollTimeout), 10_000);
  assert.equal(a.config.label, "fromflag");
  assert.equal(a.config.reconcileBeforePoll, false);
  const b = loadConfig(["-label", "fromflag"], {
    LABEL: "fromenv",
    NLMSQSEQ: "42",
    XTCP_HOSTNAME: "h1",
    HOSTNAME: "ignored",
  });
  assert.equal(b.config.label, "fromenv");
  assert.equal(b.config.nlmsgSeq, 42);
  assert.equal(b.config.hostname, "h1");
  const json = toJsonString(XtcpConfigSchema, { ...defaultConfig(), label: "fromjson", tag: "t" });
  const c = loadConfig(["-label", "fromflag"], { LABEL: "fromenv", XTCP_CONFIG_JSON: json });
  assert.equal(c.config.label, "fromjson");
  assert.throws(
    () => loadConfig([], { XTCP_CONFIG_JSON: "{not json" }),
    /Invalid XTCP_CONFIG_JSON/,
  );
});

Deno.test("S3 secrets from *_FILE win and are never printed", () => {
  const f = Deno.makeTempFileSync();
  try {
    Deno.writeTextFileSync(f, "  s3cr3t-from-file \n");
    const c = loadConfig([], { S3_SECRET_KEY: "inline", S3_SECRET_KEY_FILE: f });
    assert.equal(c.config.s3SecretKey, "s3cr3t-from-file");
  } finally {
    Deno.removeSync(f);
  }
});

Deno.test("every validation rule names the flag, the value and the rule", () => {
  const cases: [string[], RegExp][] = [
    [
      ["-frequency", "2s"],
      /--timeout: "5s": Poll timeout must be less than the poll interval \(--frequency 2s\)/,
    ],
    [["-netlinkers", "0"], /--netlinkers: "0": must be from 1 to 100/],
    [["-netlinkers", "101"], /--netlinkers: "101"/],
    [["-grpcPort", "0"], /--grpcPort: "0"/],
    [["-modulus", "0"], /--modulus: "0"/],
    [["-pollJitterPct", "101"], /--pollJitterPct: "101"/],
    [["-uplinkCount", "3"], /--uplinkCount: "3"/],
    [["-marshal", "bogus"], /--marshal: "bogus": valid marshallers are protobufList/],
    [["-dest", "foo:bar:1"], /unknown destination scheme "foo"/],
    [
      ["-dest", "s3parquet:b"],
      /s3parquet: needs s3parquet: \(with -s3Endpoint\) or s3parquet:http/,
    ],
    [["-s3ParquetCodec", "lz4"], /--s3ParquetCodec: "lz4"/],
    [["-dest", "kafka:h"], /kafka: needs HOST:PORT/],
    [["-dest", "udp:host"], /needs HOST:PORT/],
    [["-marshal", "csv", "-columns", "nope"], /--columns: "nope": unknown column/],
    [["-label", "x".repeat(41)], /--label: .*length must be from 0 to 40/],
    [["-frequency", "soon"], /--frequency: "soon": must be a duration/],
    [["-maxLoops", "-1"], /--maxLoops: "-1": must be a non-negative integer/],
    [["-deserializers", "info,zzz"], /unknown decoder "zzz"/],
    [["-nosuch", "1"], /Unknown flag --nosuch/],
  ];
  for (const [args, re] of cases) {
    assert.throws(
      () => loadConfig(args, {}),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      args.join(" "),
    );
  }
  // Accepted forms, including what the original rejected.
  for (
    const dest of [
      "udp:[::1]:9000",
      "udp://127.0.0.1:9000",
      "unix:/a:b",
      "unixgram:/tmp/x",
      "file:/tmp/x",
      "null",
    ]
  ) {
    assert.doesNotThrow(() => loadConfig(["-dest", dest], {}), dest);
  }
});

Deno.test("CAP_SYS_RESOURCE is only asked for with --ioUring", () => {
  const all = (1n << 41n) - 1n;
  const withoutResource = all & ~(1n << 24n);
  assert.deepEqual(checkCapabilities(withoutResource), []);
  const warnings = checkCapabilities(withoutResource, { ioUring: true });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /CAP_SYS_RESOURCE — raising RLIMIT_MEMLOCK for io_uring rings/);
  assert.throws(() => checkCapabilities(all & ~(1n << 12n)), /CAP_NET_ADMIN: netlink inet_diag/);
});

Deno.test("the original's Go-runtime flags are accepted, with no effect, and named", () => {
  const c = loadConfig(["-goMaxProcs", "4", "-maxThreads", "4000", "-profile.mode=cpu"], {});
  assert.deepEqual(c.ignored, ["goMaxProcs", "maxThreads", "profile.mode"]);
  assert.deepEqual(loadConfig([], {}).ignored, []);
});
