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
import { RowFilter } from "../src/poll/rows.ts";
import { SocketOwners } from "../src/poll/socket_owners.ts";
import { onlyNamespaces } from "./support/delivery.ts";
import { IDLE_CONNS_PY, type IdleHello, ip, newNetns } from "./support/idle_conns.ts";
import { freeListenArgs, xtcp2 } from "./support/run.ts";
import { socketView } from "./support/synth.ts";

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

/**
 * An owner cache over a fake process table (pid → socket inodes) whose walks cover `perWalk`
 * processes each, as a time budget would cut them; `walks()` counts them.
 */
function cacheOver(table: Map<number, number[]>, perWalk = Infinity) {
  let walks = 0;
  const owners = new SocketOwners(
    (onSocket, o) => {
      walks++;
      const pids = [...table.keys()].filter((p) => p > (o.after ?? 0)).sort((a, b) => a - b);
      const now = pids.slice(0, perWalk);
      for (const pid of now) for (const inode of table.get(pid) ?? []) onSocket(inode, pid);
      const resumeAfter = now.length < pids.length ? now[now.length - 1] ?? 0 : 0;
      return { processes: now.length, fds: 0, sockets: 0, resumeAfter };
    },
    (pid) => new TextEncoder().encode(`p${pid}`),
  );
  const x = new RecordExtra();
  const pidOf = (inode: number) => {
    x.clear();
    return owners.fill(inode, x) ? x.ownerPid : 0;
  };
  return { owners, pidOf, x, walks: () => walks };
}

Deno.test("the owner cache walks /proc only for unknown inodes, at most once per poll", () => {
  const table = new Map([[7, [100]], [8, [101]]]);
  const { owners, pidOf, x, walks } = cacheOver(table);
  owners.beginPoll();
  assert.equal(pidOf(100), 7);
  assert.equal(new TextDecoder().decode(x.ownerComm), "p7");
  assert.equal(pidOf(101), 8);
  assert.equal(pidOf(0), 0, "inode 0: no process holds it, nothing walked");
  assert.equal(walks(), 1, "one walk answers every inode it found");
  owners.beginPoll();
  assert.equal(pidOf(100), 7);
  assert.equal(walks(), 1, "known inodes: no walk");
  table.set(9, [102]);
  assert.equal(pidOf(102), 9, "a new inode: a walk");
  assert.equal(pidOf(555), 0);
  assert.equal(walks(), 2, "at most one walk per poll");
  owners.beginPoll();
  assert.equal(pidOf(555), 0, "asked before the walk's cycle began: ownerless now");
  assert.equal(walks(), 3);
  owners.beginPoll();
  assert.equal(pidOf(555), 0);
  assert.equal(walks(), 3, "an ownerless inode is not walked for again");
  assert.equal(pidOf(102), 9);
  assert.deepEqual([owners.stats.scans, owners.stats.cycles], [3, 3]);
});

Deno.test("the owner cache: a walk cut by its budget resumes in the next poll", () => {
  const table = new Map([[1, [10]], [2, [20]], [3, [30]], [4, [40]]]);
  const { owners, pidOf, walks } = cacheOver(table, 2);
  owners.beginPoll();
  assert.equal(pidOf(40), 0, "pids 1 and 2 walked: 40 not found yet");
  assert.equal(pidOf(20), 2, "found by the same walk");
  assert.equal(pidOf(999), 0);
  assert.equal(walks(), 1);
  owners.beginPoll();
  table.set(1, [10, 11]); // a socket made behind the running cycle
  assert.equal(pidOf(40), 4, "pids 3 and 4: the cycle ends");
  assert.equal(pidOf(11), 0, "asked after the cycle began: not ownerless, not found");
  assert.equal(walks(), 2);
  owners.beginPoll();
  assert.equal(pidOf(999), 0, "a whole cycle missed it: ownerless, no walk");
  assert.equal(walks(), 2);
  assert.equal(pidOf(11), 1, "a new cycle finds the late socket");
  assert.equal(walks(), 3);
  assert.deepEqual([owners.stats.scans, owners.stats.cycles], [3, 1]);
});

Deno.test("--changesOnly --socketOwners: a record written before its owner was found is due again", () => {
  const table = new Map([[1, [10]], [2, [20]]]);
  const { owners } = cacheOver(table, 1);
  const written: [number, number][] = [];
  const rows = new RowFilter({ changesOnly: true, socketOwners: true }, () => {}, owners);
  const a = socketView(1, 20);
  const poll = () => {
    rows.beginPoll(false);
    rows.beginNamespace(1);
    if (rows.wanted(a)) written.push([a.inode, rows.extraFor(a)?.ownerPid ?? 0]);
    rows.endNamespace(true);
  };
  poll(); // the walk covers pid 1 only
  poll(); // pid 2: found
  poll(); // unchanged, owner known: nothing
  assert.deepEqual(written, [[20, 0], [20, 2]]);
});
