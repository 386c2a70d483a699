/**
 * `--socketOwners`: every socket of a known process (idle_conns.py in a namespace of its own)
 * carries its pid and command, and `ss -tanp` in that namespace names the same process for the
 * same sockets, with and without `--pipeline`; the owner cache scans /proc only for inodes it does
 * not know, at most once per poll.
 *
 * The daemon runs in a PID namespace of its own (tests/support/delivery.ts `onlyNamespaces`), so
 * that it polls only the test's namespace: the process, and ss, run there too.
 */
import assert from "node:assert/strict";
import { RecordExtra } from "../src/record/extra.ts";
import { SocketOwners } from "../src/poll/socket_owners.ts";
import { onlyNamespaces } from "./support/delivery.ts";
import { IDLE_CONNS_PY, type IdleHello, ip, newNetns } from "./support/idle_conns.ts";
import { freeListenArgs, xtcp2 } from "./support/run.ts";

interface JsonRec {
  netns: string;
  inet_diag_msg_socket_source_port: number;
  inet_diag_msg_socket_destination_port?: number;
  socket_owner_pid?: number;
  socket_owner_comm?: string;
}

/**
 * Starts idle_conns.py (3 connections) in a new namespace, inside the daemon's PID namespace,
 * takes `ss -tanpH` there, then runs one poll of the daemon with `extra`; returns the records of
 * that namespace, what the script said and what ss printed.
 */
async function onePoll(
  extra: string[],
): Promise<{ recs: JsonRec[]; hello: IdleHello; ss: string }> {
  const netns = await newNetns("owners");
  const dir = await Deno.makeTempDir({ prefix: "xtcp2-owners-" });
  try {
    const hello = `${dir}/hello.json`;
    const ss = `${dir}/ss.txt`;
    const script = [
      'ip netns exec "$1" python3 "$2" 3 "$3" </dev/null >/dev/null &',
      'i=0; while [ ! -s "$3" ]; do i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.05; done',
      'ip netns exec "$1" ss -tanpH > "$4"',
      "shift 4",
      'exec "$@"',
    ].join("\n");
    const once = ["-maxLoops", "1", "-pollJitterPct", "0", "-dest", "stdout", "-marshal", "jsonl"];
    const r = await xtcp2([...once, ...freeListenArgs(), ...extra], {
      prefix: [
        ...onlyNamespaces(netns),
        "sh",
        "-ec",
        script,
        "sh",
        netns,
        IDLE_CONNS_PY,
        hello,
        ss,
      ],
    });
    assert.equal(r.code, 0, r.stderr);
    const recs = new TextDecoder().decode(r.stdout).split("\n").filter((l) => l).map((l) =>
      JSON.parse(l) as JsonRec
    ).filter((rec) => rec.netns === netns);
    return {
      recs,
      hello: JSON.parse(await Deno.readTextFile(hello)) as IdleHello,
      ss: await Deno.readTextFile(ss),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
    await ip("netns", "del", netns);
  }
}

/** `ss -tanpH` text: "localport-peerport" → the processes ss names (pid → command). */
function ssUsers(text: string): Map<string, Map<number, string>> {
  const map = new Map<string, Map<number, string>>();
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const port = (a: string) => a.slice(a.lastIndexOf(":") + 1);
    const users = new Map<number, string>();
    for (const m of line.matchAll(/\("([^"]*)",pid=(\d+),fd=\d+\)/g)) {
      users.set(Number(m[2]), m[1] ?? "");
    }
    map.set(`${port(f[3] ?? "")}-${port(f[4] ?? "")}`, users);
  }
  return map;
}

for (const mode of [[], ["-pipeline"]]) {
  Deno.test({
    name: `--socketOwners${
      mode.length ? " " + mode.join(" ") : ""
    }: the sockets of a known process carry its pid and command, as ss -tanp names them`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const { recs, hello, ss } = await onePoll(["-socketOwners", ...mode]);
      const users = ssUsers(ss);
      assert.equal(recs.length, 7, "a listener and 3 connections (2 sockets each)");
      assert.equal(users.size, 7, `ss lists ${ss}`);
      for (const r of recs) {
        const key = `${r.inet_diag_msg_socket_source_port}-${
          r.inet_diag_msg_socket_destination_port ?? "*"
        }`;
        assert.equal(r.socket_owner_pid, hello.pid, `${key}: owner pid`);
        assert.equal(r.socket_owner_comm, "python3", `${key}: owner command`);
        const u = users.get(key);
        assert.ok(u, `${key}: not in ss's list:\n${ss}`);
        assert.equal(u.get(hello.pid), "python3", `${key}: ss names ${[...u]}`);
      }
      const without = await onePoll(mode);
      assert.equal(without.recs.length, 7);
      assert.ok(
        without.recs.every((r) => r.socket_owner_pid === undefined),
        "no owners unless asked",
      );
    },
  });
}

Deno.test("the owner cache scans only for unknown inodes, at most once per poll", () => {
  let table = new Map<number, number>([[100, 7], [101, 8]]);
  let scans = 0;
  const owners = new SocketOwners(
    (onSocket) => {
      scans++;
      for (const [inode, pid] of table) onSocket(inode, pid);
      return { processes: 2, fds: table.size, sockets: table.size };
    },
    (pid) => new TextEncoder().encode(`p${pid}`),
  );
  const x = new RecordExtra();
  const pidOf = (inode: number) => {
    x.clear();
    return owners.fill(inode, x) ? x.ownerPid : 0;
  };
  owners.beginPoll();
  assert.equal(pidOf(100), 7);
  assert.equal(new TextDecoder().decode(x.ownerComm), "p7");
  assert.equal(pidOf(101), 8);
  assert.equal(pidOf(0), 0, "inode 0: no process holds it, nothing scanned");
  assert.equal(scans, 1, "one scan answers every inode it found");
  owners.beginPoll();
  assert.equal(pidOf(100), 7);
  assert.equal(scans, 1, "known inodes: no scan");
  table = new Map([[100, 7], [101, 8], [102, 9]]);
  assert.equal(pidOf(102), 9, "a new inode: a scan");
  assert.equal(pidOf(555), 0, "still unknown after this poll's scan: ownerless");
  assert.equal(scans, 2, "at most one scan per poll");
  owners.beginPoll();
  assert.equal(pidOf(555), 0);
  assert.equal(scans, 2, "an ownerless inode is not scanned for again");
  assert.equal(pidOf(102), 9);
  assert.equal(owners.stats.scans, 2);
});
