/**
 * `--filter`: ss's filter grammar parsed (errors give the position), compiled to the bytecode ss
 * itself sends (byte for byte, read off `strace` of `ss`), accepted by the kernel's audit with
 * both the compat and the v2 request, and on a live namespace the kernel then dumps exactly the
 * sockets `ss` shows with the same filter, with one walk and with two, library and daemon.
 */
import assert from "node:assert/strict";
import { startLoad } from "./support/loadgen/loadgen.ts";
import { daemon, morePolls, stopDaemon } from "./support/delivery.ts";
import { type Rec, recKey, RecSink } from "./support/records.ts";
import { parseSs, ssAddrKey } from "./support/ss_text.ts";
import { parseAll } from "./support/synth.ts";
import { COMPAT_REQUEST_LEN, DUMP_REQUEST_LEN } from "../src/netlink/constants.ts";
import { idiagExt, parseDeserializers } from "../src/netlink/deserializers.ts";
import { NetlinkError } from "../src/netlink/errors.ts";
import {
  compileFilter,
  filterBytecode,
  filterInWords,
  FilterSpecError,
  INET_DIAG_BC_D_COND,
  INET_DIAG_BC_S_COND,
  MAX_BYTECODE_LEN,
  parseFilter,
} from "../src/netlink/filter.ts";
import { writeCompatDumpRequest, writeDumpRequest } from "../src/netlink/request.ts";
import { Dumper } from "../src/netlink/dump.ts";
import { PARSE_DONE, ParseStats } from "../src/netlink/parse.ts";
import { SocketView } from "../src/netlink/socket_view.ts";
import { collectOnce } from "../src/poll/collect.ts";
import { ConfigError } from "../src/config/config_error.ts";
import { loadConfig } from "../src/config/load.ts";
import { pollSettings } from "../src/config/derive.ts";
import { openNetlinkSocketIn } from "../ffi/netns.ts";

const hex = (b: ArrayLike<number>) =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

function bytecodeOf(spec: string): Uint8Array {
  const bc = filterBytecode(spec);
  assert.ok(bc, spec);
  return bc;
}

Deno.test("--filter: ss's grammar, read left to right; in words with its grouping", () => {
  const words = (s: string) => filterInWords(parseFilter(s)!);
  assert.equal(parseFilter(""), undefined);
  assert.equal(parseFilter("   "), undefined);
  assert.equal(filterBytecode(""), undefined);
  // and/or have equal precedence in ss (misc/ssfilter.y): left to right.
  const spelled: [string, string][] = [
    [
      "dport = :443 or sport = :22 and src 10.0.0.0/8",
      "(dport = :443 or sport = :22) and src 10.0.0.0/8",
    ],
    [
      "dport = :443 or ( sport = :22 and src 10.0.0.0/8 )",
      "dport = :443 or (sport = :22 and src 10.0.0.0/8)",
    ],
    ["sport :22 dport :80", "sport = :22 and dport = :80"],
    ["sport>=:1024&&dport<1000", "sport >= :1024 and dport < :1000"],
    ["!(sport = :22 || dport = :22)", "not (sport = :22 or dport = :22)"],
    ["not sport eq 22 or dport neq 0x50", "not sport = :22 or dport != :80"],
    [
      "sport gt :1 and sport lt :9 and dport ge :2 and dport le :8",
      "sport > :1 and sport < :9 and dport >= :2 and dport <= :8",
    ],
    ["src != [::1]:22 or dst fd00::/8", "src != [::1]:22 or dst fd00::/8"],
    ["autobound and fwmark = 0x10/0xff", "autobound and fwmark = 0x10/0xff"],
    ["fwmark != 7", "fwmark != 0x7/0xffffffff"],
  ];
  for (const [spec, inWords] of spelled) assert.equal(words(spec), inWords, spec);
  // Same bytecode whichever spelling.
  assert.deepEqual(bytecodeOf("sport >= :1024"), bytecodeOf("sport ge 1024"));
  assert.deepEqual(bytecodeOf("src = 10.0.0.1"), bytecodeOf("src 10.0.0.1/32"));
  assert.deepEqual(bytecodeOf("dst [::ffff:10.0.0.1]"), bytecodeOf("dst ::ffff:a00:1/128"));
  assert.deepEqual(bytecodeOf("src *:22"), bytecodeOf("src :22"));
  // What the kernel's audit asks of any program: not empty, a multiple of 4 bytes.
  for (const f of [...SS_FILTERS, ...LIVE_FILTERS]) {
    const bc = compileFilter(parseFilter(f)!);
    assert.ok(bc.length > 0 && bc.length % 4 === 0, f);
  }
});

Deno.test("--filter: what does not parse says where and why", () => {
  const cases: [string, number, RegExp][] = [
    ["sport = :22 or (dst 10.0.0.1", 16, /"\(" at character 16 is not closed/],
    ["sport = :22 )", 13, /a "\)" without "\("/],
    ["sport = :65536", 9, /not a port/],
    ["dport = :https", 9, /not a port/],
    ["sport", 6, /a port .* is missing at the end/],
    ["src > 10.0.0.1", 5, /src takes = or !=, not ">"/],
    ["dst 10.0.0.1/33", 5, /not a prefix length of an IPv4 address \(0 to 32\)/],
    ["dst fd00::/129", 5, /prefix length of an IPv6 address \(0 to 128\)/],
    ["dst ::1", 5, /IPv6 address goes in brackets/],
    ["src 10.0.0.256", 5, /not an IPv4 or IPv6 address/],
    ["src 1:2:3:4:5:6:7:8:9/64", 5, /not an IPv4 or IPv6 address/],
    ["src [::1", 5, /without "\]"/],
    ["src [::1]/128", 5, /a prefix goes inside/],
    ["sport = :22 and", 16, /missing at the end/],
    ["sport = :22 xor dport = :1", 13, /expected a condition .* got "xor"/],
    ["( )", 3, /empty parentheses/],
    ["sport =< :22", 7, /got "=<"/],
    ["fwmark = 1/2/3", 10, /not a mark/],
    ["src *", 5, /neither an address nor a port/],
  ];
  for (const [spec, at, why] of cases) {
    assert.throws(() => parseFilter(spec), (e: unknown) => {
      assert.ok(e instanceof FilterSpecError, `${spec}: ${e}`);
      assert.equal(e.position + 1, at, `${spec}: ${e.message}`);
      assert.match(e.message, why, spec);
      assert.ok(e.message.includes(`at character ${at}:`), e.message);
      return true;
    });
  }
  // Too long for one request: a clear error, not a kernel EINVAL.
  const long = Array.from({ length: 300 }, (_, i) => `sport = :${i}`).join(" or ");
  assert.throws(() => filterBytecode(long), /at most 4016/);
  assert.ok(bytecodeOf(long.split(" or ").slice(0, 150).join(" or ")).length <= MAX_BYTECODE_LEN);
});

Deno.test("--filter and FILTER: checked when the configuration loads, derived for the poller", () => {
  assert.throws(
    () => loadConfig(["-filter", "sport = :22 or (dst 10.0.0.1"], {}),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /--filter.*at character 16: "\(" at character 16 is not closed/);
      return true;
    },
  );
  assert.throws(
    () => loadConfig([], { FILTER: "src 10.0.0.0/40" }),
    /--filter.*"src 10.0.0.0\/40".*at character 5/,
  );
  const host = { hostname: "h", version: "v" };
  const none = pollSettings(loadConfig([], {}).config, host).dump;
  assert.equal(none.filter, "");
  assert.equal(none.bytecode, undefined);
  const spec = "dport = :443 or sport = :22 and src 10.0.0.0/8";
  const d = pollSettings(loadConfig(["-filter", spec], {}).config, host).dump;
  assert.equal(d.filter, "(dport = :443 or sport = :22) and src 10.0.0.0/8");
  assert.deepEqual(d.bytecode, Array.from(bytecodeOf(spec)));
  assert.ok(Object.isFrozen(d.bytecode), "settings are not changed in place");
});

Deno.test("--filter: the bytecode rides both requests as INET_DIAG_REQ_BYTECODE", () => {
  const bc = bytecodeOf("dport = :443");
  for (
    const [write, base] of [[writeDumpRequest, DUMP_REQUEST_LEN], [
      writeCompatDumpRequest,
      COMPAT_REQUEST_LEN,
    ]] as const
  ) {
    const out = new Uint8Array(base + 4 + bc.length + 8).fill(0xee);
    const plain = new Uint8Array(base);
    write(plain, 0, { family: 0, ext: 0xfe, seq: 7, states: 0xfff });
    const n = write(out, 0, { family: 0, ext: 0xfe, seq: 7, states: 0xfff, bytecode: bc });
    assert.equal(n, base + 4 + bc.length);
    const dv = new DataView(out.buffer);
    assert.equal(dv.getUint32(0, true), n, "nlmsg_len covers the attribute");
    assert.deepEqual(out.subarray(4, base), plain.subarray(4), "the request struct is unchanged");
    assert.equal(dv.getUint16(base, true), 4 + bc.length, "rta_len");
    assert.equal(dv.getUint16(base + 2, true), 1, "rta_type INET_DIAG_REQ_BYTECODE");
    assert.deepEqual(out.subarray(base + 4, n), bc);
    assert.equal(out[n], 0xee, "nothing written past the request");
    // In a capture (--writeFiles), the longer request is still one message, skipped as a request.
    const stats = new ParseStats();
    const got = parseAll(
      out.subarray(0, n),
      () => assert.fail("a request is not a socket"),
      new SocketView(),
      stats,
    );
    assert.equal(got & PARSE_DONE, 0);
    assert.deepEqual([stats.messages, stats.requests, stats.sockets], [1, 1, 0]);
  }
});

/**
 * The requests `ss -tan FILTER` sends (run under strace in an empty namespace), each as the
 * bytes of its INET_DIAG_REQ_BYTECODE attribute's payload.
 */
async function ssBytecode(filter: string): Promise<Uint8Array[]> {
  const trace = await Deno.makeTempFile({ prefix: "xtcp2-ss-strace-" });
  try {
    const out = await new Deno.Command("unshare", {
      args: [
        "-n",
        "strace",
        "-qq",
        "-o",
        trace,
        "-e",
        "trace=sendmsg",
        "-e",
        "write=3",
        "ss",
        "-tan",
        filter,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(out.success, `ss ${filter}: ${new TextDecoder().decode(out.stderr)}`);
    const msgs: number[][] = [];
    for (const line of Deno.readTextFileSync(trace).split("\n")) {
      if (line.startsWith("sendmsg(3, {msg_name={sa_family=AF_NETLINK")) msgs.push([]);
      else if (/^ \| [0-9a-f]{5} {2}/.test(line)) {
        msgs.at(-1)?.push(
          ...(line.slice(10, 58).match(/[0-9a-f]{2}/g) ?? []).map((h) => parseInt(h, 16)),
        );
      }
    }
    return msgs.map((m) => {
      const b = new Uint8Array(m);
      const dv = new DataView(b.buffer);
      assert.equal(dv.getUint32(0, true), b.length, "strace gave the whole message");
      assert.equal(dv.getUint16(4, true), 20, "ss sends SOCK_DIAG_BY_FAMILY");
      assert.equal(dv.getUint16(DUMP_REQUEST_LEN + 2, true), 1, "INET_DIAG_REQ_BYTECODE");
      return b.subarray(
        DUMP_REQUEST_LEN + 4,
        DUMP_REQUEST_LEN + dv.getUint16(DUMP_REQUEST_LEN, true),
      );
    });
  } finally {
    Deno.removeSync(trace);
  }
}

/**
 * `bc` with the two padding bytes of each inet_diag_hostcond zeroed: ss leaves them as they were
 * in its heap (seen: 00 00 in the first request, 02 00 in the second), we send zeros.
 */
function zeroHostcondPadding(bc: Uint8Array): Uint8Array {
  const b = bc.slice();
  for (let at = 0; at < b.length; at += b[at + 1] || 4) {
    if (b[at] === INET_DIAG_BC_S_COND || b[at] === INET_DIAG_BC_D_COND) b.fill(0, at + 6, at + 8);
  }
  return b;
}

/** Filters whose bytecode is compared with ss's (ss wants spaces around its tokens). */
const SS_FILTERS = [
  "dport = :443",
  "sport = :22",
  "sport != :22",
  "sport >= :1024",
  "sport <= :1024",
  "sport > :1024",
  "dport < :100",
  "dport ge :10 and dport le :20",
  "src 10.0.0.0/8",
  "src 127.0.0.1:22",
  "dst [::1]",
  "dst [fd00::/8]:443",
  "dst fe80::/10",
  "src *:22",
  "dport = :443 or sport = :22 and src 10.0.0.0/8",
  "dport = :443 or ( sport = :22 and src 10.0.0.0/8 )",
  "not ( sport = :22 or dport = :22 ) and not src 192.168.0.0/16",
  "sport = :1 or sport = :2 or sport = :3 and dport != :4",
  "autobound",
  "not autobound and dst [::ffff:10.0.0.1]",
  "fwmark = 0x10/0xff",
  "fwmark = 5 or dport = :80",
];

Deno.test({
  name: "--filter: the bytecode is byte for byte what ss sends for the same filter",
  ignore: !(await hasStrace()),
  async fn() {
    for (const f of SS_FILTERS) {
      const ours = bytecodeOf(f);
      const theirs = await ssBytecode(f);
      assert.equal(theirs.length, 2, `${f}: ss sends one request per family`);
      for (const t of theirs) {
        assert.equal(hex(zeroHostcondPadding(t)), hex(ours), f);
      }
    }
  },
});

async function hasStrace(): Promise<boolean> {
  try {
    return (await new Deno.Command("strace", { args: ["-V"], stdout: "null" }).output()).success;
  } catch {
    console.warn("SKIPPED: strace is not installed (apt install strace; quickstart.sh test does)");
    return false;
  }
}

/** A random filter of `depth` levels, as text ss's grammar reads. */
function randomFilter(rnd: () => number, depth: number): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];
  const port = () => String(Math.floor(rnd() * 65536));
  if (depth <= 0 || rnd() < 0.3) {
    return pick([
      () => `${pick(["sport", "dport"])} ${pick(["=", "!=", ">=", "<=", ">", "<"])} :${port()}`,
      () =>
        `${pick(["src", "dst"])} ${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.0.0/${
          Math.floor(rnd() * 33)
        }`,
      () =>
        `${pick(["src", "dst"])} [fd${Math.floor(rnd() * 256).toString(16)}::${
          Math.floor(rnd() * 65536).toString(16)
        }/${Math.floor(rnd() * 129)}]:${port()}`,
      () => `${pick(["src", "dst"])} *:${port()}`,
      () => "autobound",
      () => `fwmark = ${Math.floor(rnd() * 2 ** 32)}/0xff`,
    ])();
  }
  const a = randomFilter(rnd, depth - 1);
  const b = randomFilter(rnd, depth - 1);
  return pick([
    () => `${a} and ${b}`,
    () => `${a} or ${b}`,
    () => `( ${a} ) or ( ${b} )`,
    () => `not ( ${a} )`,
    () => `${a} ${b}`,
  ])();
}

/** A namespace of its own for the test, deleted after `fn`. */
async function withNetns<T>(fn: (name: string) => Promise<T>): Promise<T> {
  const name = `xtcp2-filter-${crypto.randomUUID().slice(0, 8)}`;
  const ip = async (...args: string[]) => {
    const out = await new Deno.Command("ip", { args, stderr: "piped" }).output();
    assert.ok(out.success, `ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  };
  await ip("netns", "add", name);
  try {
    await ip("-n", name, "link", "set", "lo", "up");
    return await fn(name);
  } finally {
    await ip("netns", "del", name);
  }
}

Deno.test({
  name: "--filter: the kernel's audit accepts every program we compile, compat and v2 requests",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withNetns((name) => {
      const mask = parseDeserializers("default");
      let seed = 12;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      using sock = openNetlinkSocketIn(`/run/netns/${name}`, { rcvTimeoutMs: 1000 });
      let bytes = 0;
      for (let i = 0; i < 300; i++) {
        const spec = randomFilter(rnd, 1 + (i % 4));
        const bc = bytecodeOf(spec);
        bytes = Math.max(bytes, bc.length);
        for (const oneWalk of [true, false]) {
          const d = new Dumper({ mask, ext: idiagExt(mask), oneWalk, bytecode: bc });
          try {
            d.dump(sock, new RecSink());
          } catch (err) {
            assert.fail(`${spec} (${bc.length} bytes, ${oneWalk ? "compat" : "v2"}): ${err}`);
          }
          assert.equal(d.compatRefused, 0, `${spec}: the compat request took it`);
          assert.deepEqual(d.walks, oneWalk ? { one: 1, two: 0 } : { one: 0, two: 1 });
        }
      }
      assert.ok(bytes > 200, `programs up to ${bytes} bytes`);
      // The audit is real: a jump into the middle of a condition is refused, with either request.
      const bad = bytecodeOf("sport = :22 or dport = :23");
      new DataView(bad.buffer).setUint16(2, 8, true); // "no" lands inside the hostcond
      for (const oneWalk of [true, false]) {
        const d = new Dumper({ mask, ext: idiagExt(mask), oneWalk, bytecode: bad });
        assert.throws(() => d.dump(sock, new RecSink()), (e: unknown) => {
          assert.ok(e instanceof NetlinkError, String(e));
          assert.match(e.message, /EINVAL|Invalid argument|-22|22/);
          return true;
        });
      }
      return Promise.resolve();
    });
  },
});

/** The filters of the live comparison (listeners on 20000-20003; clients' ports random). */
const LIVE_FILTERS = [
  "sport = :20000",
  "dport = :20001",
  "sport >= :20002",
  "sport < :20001",
  "dport > :20001 or dport <= :20000",
  "src 10.7.0.0/16",
  "dst 127.0.0.1",
  "src [fd07::1]",
  "dst fd07::/16",
  "src [::1]:20002 or src [fd07::1]:20003",
  "dport = :20000 or sport = :20000 and src 10.7.0.1",
  "not ( sport = :20000 or dport = :20000 )",
  "( src 10.7.0.1 or src [fd07::1] ) and dport ge :20001",
  // ss tests autobound again in user space (local port in ip_local_port_range), so only the
  // sockets both tests accept compare: with the kernel's test alone, "not autobound" keeps the
  // listeners, which ss then drops.
  "autobound",
  "not src 127.0.0.0/8 and not dst [::1]",
  "sport != :20002 and dst [::1]",
];

async function ssKeys(netns: string, filter: string): Promise<string[]> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, "ss", "-tanHe", filter],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, `ss ${filter}: ${new TextDecoder().decode(out.stderr)}`);
  return parseSs(new TextDecoder().decode(out.stdout)).map(ssAddrKey).sort();
}

const keys = (recs: Rec[]) => recs.map(recKey).sort();

Deno.test({
  name: "live: with a filter the kernel dumps exactly ss's sockets (one walk, two walks, daemon)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using load = await startLoad({
      conns: 64,
      ipv6Fraction: 0.5,
      bytes: 10,
      hosts4: ["127.0.0.1", "10.7.0.1"],
      hosts6: ["::1", "fd07::1"],
    });
    const mask = parseDeserializers("default");
    const dump = (filter: string, oneWalk: boolean) => {
      const sink = new RecSink();
      const bc = filterBytecode(filter);
      collectOnce({
        nsPath: load.nsPath,
        mask,
        ext: idiagExt(mask),
        oneWalk,
        ...(bc ? { bytecode: bc } : {}),
      }, sink);
      return keys(sink.recs);
    };
    const all = dump("", true);
    assert.deepEqual(all, await ssKeys(load.netns, ""));
    assert.equal(all.length, 2 * 64 + load.listeners);
    assert.ok(all.length <= 200, `${all.length} sockets`);
    const counts: string[] = [];
    for (const f of LIVE_FILTERS) {
      const ss = await ssKeys(load.netns, f);
      const one = dump(f, true);
      assert.deepEqual(one, ss, `one walk, ${f}`);
      assert.deepEqual(dump(f, false), ss, `two walks, ${f}`);
      assert.ok(ss.length > 0 && ss.length < all.length, `${f}: ${ss.length} of ${all.length}`);
      counts.push(`${f}: ${ss.length}`);
    }
    console.log(`of ${all.length} sockets: ${counts.join("; ")}`);

    // The daemon, flag to kernel: --filter then --twoWalks, each poll's rows for the namespace.
    const filter = "dport = :20000 or sport = :20000 and src 10.7.0.1";
    const want = await ssKeys(load.netns, filter);
    for (const extra of [[], ["-twoWalks"]]) {
      const dir = Deno.makeTempDirSync();
      try {
        const d = daemon(
          `file:${dir}/out.jsonl`,
          "jsonl",
          ["-filter", filter, ...extra],
          load.netns,
        );
        await morePolls(d, 1, 0);
        const log = await stopDaemon(d);
        assert.match(
          log,
          /filter: \(dport = :20000 or sport = :20000\) and src 10\.7\.0\.1 \(52 bytes of INET_DIAG_REQ_BYTECODE\)/,
        );
        assert.match(
          log,
          extra.length ? /request: one inet_diag_req_v2 per family/ : /request: one walk/,
        );
        const rows = Deno.readTextFileSync(`${dir}/out.jsonl`).trimEnd().split("\n")
          .map((l) => JSON.parse(l)).filter((r) => r.netns === load.netns);
        const firstPoll = rows.filter((r) => r.timestamp_ns === rows[0].timestamp_ns);
        assert.equal(firstPoll.length, want.length, `${extra.join(" ")}: ${log}`);
        // jsonl leaves out fields that are 0 (a listener's peer port).
        const ports = (r: Record<string, number | undefined>) =>
          [
            r.inet_diag_msg_socket_source_port,
            r.inet_diag_msg_socket_destination_port,
            r.inet_diag_msg_inode,
          ].map((v) => v ?? 0).join("|");
        const ssPorts = want.map((k) => {
          const [l, p, ino] = k.split("|");
          return `${l.slice(l.lastIndexOf(":") + 1)}|${p.slice(p.lastIndexOf(":") + 1)}|${ino}`;
        }).sort();
        assert.deepEqual(firstPoll.map(ports).sort(), ssPorts, extra.join(" "));
        console.log(`daemon ${extra.join(" ") || "(one walk)"}: ${firstPoll.length} rows = ss`);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    }
  },
});
