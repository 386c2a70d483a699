/**
 * The `xtcp2` command as users run it (a real subprocess): `decode` of captures into JSON lines
 * and protobufList, clear errors on damaged input, one-shot live collection, and configuration
 * (an invalid one exits 2 with one line and starts nothing; --conf redacts; -v; --help).
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import { EnvelopeSchema } from "../src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { allSharedPcaps, ownCaptures } from "./support/fixtures.ts";
import { decodeFile } from "./support/records.ts";
import { xtcp2 } from "./support/run.ts";

function captures(): string[] {
  const own = ownCaptures().map((c) => c.pcap);
  const shared = allSharedPcaps().filter((p) => /tcp_10_sockets|6_10_3_tcp_100/.test(p));
  return [...own, ...shared];
}

Deno.test("decode prints one JSON object per socket, snake_case keys, 64-bit as decimal", async () => {
  const files = captures();
  assert.ok(files.length > 0, "no capture to decode");
  for (const f of files) {
    const { code, stdout, stderr } = await xtcp2(["decode", f], {
      perms: ["--allow-read", "--allow-env"],
    });
    assert.equal(code, 0, stderr);
    const lines = new TextDecoder().decode(stdout).trimEnd().split("\n");
    const recs = decodeFile(f);
    assert.equal(lines.length, recs.length, f);
    lines.forEach((line, i) => {
      const o = JSON.parse(line);
      for (const k of Object.keys(o)) assert.match(k, /^[a-z][a-z0-9_]*$/, `${f}: key ${k}`);
      assert.equal(o.inet_diag_msg_inode ?? 0, recs[i].get("inet_diag_msg_inode"));
      assert.equal(
        o.inet_diag_msg_socket_cookie,
        String(recs[i].get("inet_diag_msg_socket_cookie")),
      );
      assert.match(o.inet_diag_msg_socket_cookie, /^\d+$/);
      if (o.tcp_info_bytes_acked !== undefined) assert.match(o.tcp_info_bytes_acked, /^\d+$/);
    });
  }
});

Deno.test("decode --format protobuflist writes one varint-prefixed Envelope", async () => {
  const f = captures()[0];
  const { code, stdout, stderr } = await xtcp2(["decode", "--format", "protobuflist", f], {
    perms: ["--allow-read", "--allow-env"],
  });
  assert.equal(code, 0, stderr);
  let len = 0;
  let shift = 0;
  let i = 0;
  for (;; i++) {
    len += (stdout[i] & 0x7f) * 2 ** shift;
    shift += 7;
    if ((stdout[i] & 0x80) === 0) break;
  }
  assert.equal(len, stdout.length - i - 1);
  const env = fromBinary(EnvelopeSchema, stdout.subarray(i + 1));
  assert.equal(env.row.length, decodeFile(f).length);
});

Deno.test("damaged captures fail with the file name and offset, exit status 1", async () => {
  const f = captures()[0];
  const bytes = Deno.readFileSync(f);
  const tmp = Deno.makeTempFileSync({ suffix: ".pcap" });
  try {
    Deno.writeFileSync(tmp, bytes.slice(0, bytes.length - 7));
    const r = await xtcp2(["decode", tmp], { perms: ["--allow-read", "--allow-env"] });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${tmp} at offset \\d+`));
    const broken = bytes.slice();
    new DataView(broken.buffer).setUint32(24 + 16 + 16, 0xffff, true); // nlmsg_len of packet 0
    Deno.writeFileSync(tmp, broken);
    const r2 = await xtcp2(["decode", tmp], { perms: ["--allow-read", "--allow-env"] });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /Bad nlmsg_len 65535.* at offset 56/);
    const missing = await xtcp2(["decode", tmp + ".nope"], {
      perms: ["--allow-read", "--allow-env"],
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\.nope/);
  } finally {
    Deno.removeSync(tmp);
  }
});

Deno.test("invalid flags give one clear line and exit status 2", async () => {
  for (
    const [args, re] of [
      [["--marshal", "bogus"], /--marshal: "bogus"/],
      [["--deserializers", "info,nope"], /--deserializers: "info,nope": unknown decoder "nope"/],
      [["--maxLoops", "-3"], /--maxLoops/],
      [["--frequency", "10 parsecs"], /--frequency/],
      [["--nosuchflag"], /nosuchflag/],
    ] as const
  ) {
    const r = await xtcp2([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});

Deno.test("the binary: invalid config exits 2 with one line; --conf redacts; -v", async () => {
  const bad = await xtcp2(["-frequency", "2s", "-dest", "file:/tmp/xtcp2-should-not-exist/x"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  assert.match(bad.stderr, /Poll timeout must be less than the poll interval \(--frequency 2s\)/);
  assert.throws(() => Deno.statSync("/tmp/xtcp2-should-not-exist"), "nothing was started");
  const conf = await xtcp2(["--conf", "-s3SecretKey", "topsecret", "-label", "L"]);
  assert.equal(conf.code, 0, conf.stderr);
  const text = new TextDecoder().decode(conf.stdout);
  assert.ok(!text.includes("topsecret"));
  const parsed = JSON.parse(text);
  assert.equal(parsed.label, "L");
  assert.equal(parsed.s3SecretKey, "");
  const v = await xtcp2(["-v"]);
  assert.equal(v.code, 0);
  assert.match(
    new TextDecoder().decode(v.stdout),
    /^xtcp commit:\S+\tdate\(UTC\):\S+\tversion:\S+\n$/,
  );
  const help = await xtcp2(["--help"]);
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /--envelopeFlushRows/);
});
