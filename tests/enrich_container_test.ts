/**
 * `-enrichContainer`, `-resolveContainerId`: the sockets of a container's namespace carry its
 * id, name, image and runtime. Real podman containers listening on ports: one on a bridge
 * network (its namespace bind-mounted at `/run/netns/netns-<uuid>`, the name records carry), one
 * with `--network none` (its namespace visible only through `/proc/<pid>/ns/net`, named by the
 * container id of its cgroup). From podman's Docker Engine API: all four columns; from the
 * cgroup alone (no API, or an API that does not answer): id and runtime.
 */
import assert from "node:assert/strict";
import { netnsInode } from "../ffi/libc.ts";
import { containerFromCgroup } from "../src/netns/containers.ts";
import { parseHttpAnswer } from "../src/netns/docker.ts";
import { type Container, podmanMissing, startPodman } from "./support/podman.ts";
import { startDaemon } from "./support/daemon.ts";
import { pollOnceJsonl, until } from "./support/run.ts";

const missing = podmanMissing();
if (missing) console.warn(`SKIP enrich_container_test: ${missing}`);

/** The records of each container's namespace (by netns inode), from one poll of the host. */
async function byContainer(
  containers: Container[],
  extra: string[],
): Promise<{ records: Map<Container, Record<string, unknown>[]>; stderr: string }> {
  // Listening sockets only: the containers' are, and other tests' loads stay out of the output.
  const { records, stderr } = await pollOnceJsonl([...extra, "-states", "listening"]);
  const out = new Map<Container, Record<string, unknown>[]>();
  for (const c of containers) {
    const ino = String(netnsInode(`/proc/${c.pid}/ns/net`));
    out.set(c, records.filter((r) => r.netns_inode === ino));
  }
  return { records: out, stderr };
}

/** The name records give the container's namespace (the reference's naming). */
function expectedNetns(c: Container): string {
  return c.sandboxKey ? c.sandboxKey.slice(c.sandboxKey.lastIndexOf("/") + 1) : c.id;
}

function assertColumns(
  c: Container,
  recs: Record<string, unknown>[],
  want: { name?: string; image?: string; runtime: string },
): void {
  assert.ok(
    recs.some((r) => r.inet_diag_msg_socket_source_port === c.port),
    `${c.name}: a record of its listener on port ${c.port}`,
  );
  for (const r of recs) {
    assert.deepEqual(
      {
        netns: r.netns,
        id: r.container_id,
        name: r.container_name,
        image: r.container_image,
        runtime: r.container_runtime,
      },
      {
        netns: expectedNetns(c),
        id: c.id,
        name: want.name,
        image: want.image,
        runtime: want.runtime,
      },
      c.name,
    );
  }
}

Deno.test({
  name: "container columns from podman's Docker API and from /proc/<pid>/cgroup",
  ignore: missing !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using podman = await startPodman("i14a");
    const web = await podman.run("i14a-web", "bridge", 31480);
    const none = await podman.run("i14a-none", "none", 31481);
    assert.match(web.sandboxKey, /^\/run\/netns\/netns-/);
    assert.equal(none.sandboxKey, "");
    const both = [web, none];

    await t.step("-enrichContainer: id, name, image, runtime podman", async () => {
      const { records } = await byContainer(both, [
        "-enrichContainer",
        "-dockerSocket",
        podman.socket,
      ]);
      for (const c of both) {
        assertColumns(c, records.get(c) ?? [], { name: c.name, image: c.image, runtime: "podman" });
      }
      assert.equal(web.image, podman.image);
    });

    await t.step("-resolveContainerId alone: id and runtime from the cgroup", async () => {
      const { records } = await byContainer(both, ["-resolveContainerId"]);
      for (const c of both) assertColumns(c, records.get(c) ?? [], { runtime: "podman" });
    });

    await t.step(
      "an API that does not answer: the cgroup's columns, the failure said",
      async () => {
        const { records, stderr } = await byContainer(both, [
          "-enrichContainer",
          "-dockerSocket",
          `${podman.socket}.absent`,
          "-resolveContainerId",
        ]);
        assert.match(stderr, /Container enrichment: Docker API at .*\.absent/);
        for (const c of both) assertColumns(c, records.get(c) ?? [], { runtime: "podman" });
      },
    );

    await t.step("a container started while the daemon runs: its columns come", async () => {
      const dir = await Deno.makeTempDir();
      try {
        const file = `${dir}/out.jsonl`;
        await using d = startDaemon([
          ...["-frequency", "1s", "-timeout", "900ms", "-pollJitterPct", "0"],
          ...["-dest", `file:${file}`, "-marshal", "jsonl", "-states", "listening"],
          ...["-enrichContainer", "-dockerSocket", podman.socket],
        ]);
        await until("the first poll", () => /poll 1:/.test(d.log()));
        const late = await podman.run("i14a-late", "bridge", 31482);
        const ino = String(netnsInode(`/proc/${late.pid}/ns/net`));
        let recs: Record<string, unknown>[] = [];
        await until("records of the late container with its columns", () => {
          let text = "";
          try {
            text = Deno.readTextFileSync(file);
          } catch {
            return false;
          }
          recs = text.split("\n").filter((l) => l).map((l) => JSON.parse(l))
            .filter((r) => r.netns_inode === ino && r.container_name !== undefined);
          return recs.length > 0;
        });
        assertColumns(late, recs, { name: late.name, image: late.image, runtime: "podman" });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });

    await t.step("without the flags: no container columns", async () => {
      const { records } = await byContainer(both, []);
      for (const c of both) {
        const recs = records.get(c) ?? [];
        assert.ok(recs.length > 0);
        for (const r of recs) assert.equal(r.container_id, undefined);
      }
    });
  },
});

Deno.test("containerFromCgroup: the cgroup leaves of docker, podman, containerd and CRI-O", () => {
  const id = "0123456789abcdef".repeat(4);
  const cases: [string, string][] = [
    [`12:memory:/docker/${id}`, "docker"],
    [`0::/system.slice/docker-${id}.scope`, "docker"],
    [`9:pids:/libpod_parent/libpod-${id}`, "podman"],
    [`0::/machine.slice/libpod-${id}.scope/container`, "podman"],
    [`0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-${id}.scope`, "containerd"],
    [`0::/kubepods.slice/kubepods-pod1.slice/crio-${id}.scope`, "crio"],
    [`4:cpu:/kubepods/besteffort/pod1/${id}`, ""],
  ];
  for (const [line, runtime] of cases) {
    const got = containerFromCgroup(`1:name=systemd:/\n${line}\n`);
    assert.deepEqual(got, { id, runtime }, line);
  }
  assert.equal(containerFromCgroup("0::/user.slice/user-0.slice/session-1.scope\n"), undefined);
  // conmon's own cgroup is not the container's.
  assert.equal(containerFromCgroup(`9:pids:/libpod_parent/conmon\n`), undefined);
});

Deno.test("parseHttpAnswer: Content-Length and chunked answers of the Docker API", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.deepEqual(
    parseHttpAnswer(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]trailing")),
    { status: 200, body: "[]" },
  );
  assert.deepEqual(
    parseHttpAnswer(
      enc(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[{"a\r\n4;x=y\r\n":1}\r\n1\r\n]\r\n0\r\n\r\n',
      ),
    ),
    { status: 200, body: '[{"a":1}]' },
  );
  assert.equal(parseHttpAnswer(enc("HTTP/1.0 404 Not Found\r\n\r\nno such container")).status, 404);
  assert.throws(() => parseHttpAnswer(enc("HTTP/1.1 200 OK\r\n")), /header end/);
});
