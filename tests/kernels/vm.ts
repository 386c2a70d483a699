/**
 * Host side of the kernel suite: fetch Debian's kernels with apt (never installed on the host),
 * build a small initramfs around them, and boot them in QEMU with the project, Deno and its npm
 * cache shared over 9p. The guest side is `init.sh` (PID 1) and `guest.ts` (the checks).
 *
 * Everything fetched or built lives under `.deps/kernels/` (override with XTCP2_KERNEL_CACHE):
 * the downloaded packages, the few files taken out of them, a private apt state for
 * bookworm-backports, and one output directory per boot (`runs/`), kept for inspection.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** A Debian kernel the suite boots. */
export interface KernelSpec {
  /** "6.1" or "6.12": the kernel package must be `linux-image-<label>.…`. */
  label: string;
  /** Debian suite the kernel comes from. */
  suite: "bookworm" | "bookworm-backports";
  /** Bytes of tcp_info (INET_DIAG_INFO) this kernel sends. */
  tcpInfoLen: number;
  /** Name of its committed capture in tests/captures. */
  capture: string;
}

/** The kernels most nodes run: Debian 12's default and bookworm-backports'. */
export const KERNELS: readonly KernelSpec[] = [
  { label: "6.1", suite: "bookworm", tcpInfoLen: 232, capture: "loopback_6_1" },
  { label: "6.12", suite: "bookworm-backports", tcpInfoLen: 248, capture: "loopback_6_12" },
];

/** Repository root. */
export const ROOT: string = fileURLToPath(new URL("../..", import.meta.url));

/** Where downloads, extracted kernels and boot outputs live. */
export const CACHE_DIR: string = Deno.env.get("XTCP2_KERNEL_CACHE") ??
  `${ROOT}.deps/kernels`;

/** The 9p stack, in load order (paths under lib/modules/RELEASE/kernel, without `.ko`). */
const NINEP_MODULES = [
  "drivers/virtio/virtio_ring",
  "drivers/virtio/virtio",
  "drivers/virtio/virtio_pci_modern_dev",
  "drivers/virtio/virtio_pci_legacy_dev",
  "drivers/virtio/virtio_pci",
  "fs/netfs/netfs",
  "fs/fscache/fscache",
  "net/9p/9pnet",
  "net/9p/9pnet_virtio",
  "fs/9p/9p",
];
/** Left for the kernel to load through modprobe (or not at all). */
const DIAG_MODULES = ["net/ipv4/inet_diag", "net/ipv4/tcp_diag"];

/** Result of a command. */
interface RunOut {
  stdout: string;
  stderr: string;
}

/** Runs a command; throws with its stderr when it fails. */
async function run(cmd: string, args: string[], cwd?: string): Promise<RunOut> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "piped",
      ...(cwd ? { cwd } : {}),
    }).output();
  } catch (err) {
    throw new Error(`Cannot run ${cmd}: ${(err as Error).message}`);
  }
  const dec = new TextDecoder();
  const r = { stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${r.stderr.trim()}`);
  }
  return r;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function kvmUsable(): boolean {
  try {
    Deno.openSync("/dev/kvm", { read: true, write: true }).close();
    return true;
  } catch {
    return false;
  }
}

async function which(name: string): Promise<string | undefined> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    const p = `${dir}/${name}`;
    try {
      const st = await Deno.stat(p);
      if (st.isFile && (st.mode ?? 0) & 0o111) return await Deno.realPath(p);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Host tools the suite needs. */
export interface HostTools {
  qemu: string;
  busybox: string;
  ip: string;
  ss: string;
  /** QEMU accelerator: TCG unless the CPU shows VT-x/AMD-V and /dev/kvm is usable. */
  accel: "tcg" | "kvm";
}

/**
 * Finds the host tools, or says what is missing (the suite then skips, naming it).
 *
 * @example
 * ```ts
 * const t = await hostTools();
 * if (typeof t === "string") console.warn(`skipping: ${t}`);
 * ```
 */
export async function hostTools(): Promise<HostTools | string> {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return `needs Linux on x86_64 (this is ${Deno.build.os} on ${Deno.build.arch})`;
  }
  const missing: string[] = [];
  const need = async (bin: string, pkg: string) => {
    const p = await which(bin);
    if (!p) missing.push(`${bin} (${pkg})`);
    return p ?? "";
  };
  const qemu = await need("qemu-system-x86_64", "qemu-system-x86");
  const ip = await need("ip", "iproute2");
  const ss = await need("ss", "iproute2");
  await need("apt-get", "apt");
  await need("dpkg-deb", "dpkg");
  await need("xz", "xz-utils");
  await need("ldd", "libc-bin");
  await need("bash", "bash");
  const busybox = "/bin/busybox";
  if (!exists(busybox)) missing.push("/bin/busybox (busybox-static)");
  if (missing.length > 0) return `missing ${missing.join(", ")}`;
  const ldd = await new Deno.Command("ldd", { args: [busybox], stdout: "piped", stderr: "piped" })
    .output();
  if (ldd.success) return "/bin/busybox is not static: install busybox-static";
  const version = await new Deno.Command(qemu, {
    args: ["--version"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!version.success) {
    return `${qemu} cannot run: ${new TextDecoder().decode(version.stderr).trim()}`;
  }
  // KVM only with real VT-x/AMD-V: under nested "PVM" (a /dev/kvm, no vmx/svm flag) a stock
  // kernel dies in KVM's instruction emulator. XTCP2_QEMU_ACCEL=tcg|kvm overrides.
  const cpu = await Deno.readTextFile("/proc/cpuinfo");
  const want = Deno.env.get("XTCP2_QEMU_ACCEL");
  const accel = want === "kvm" || want === "tcg"
    ? want
    : /\b(vmx|svm)\b/.test(cpu) && kvmUsable()
    ? "kvm"
    : "tcg";
  return { qemu, busybox, ip, ss, accel };
}

/** A kernel taken out of its Debian package. */
export interface KernelTree {
  spec: KernelSpec;
  /** Package name, e.g. linux-image-6.1.0-57-amd64. */
  pkg: string;
  /** Debian version of the package. */
  version: string;
  /** `uname -r` of the kernel. */
  release: string;
  /** Directory holding boot/ and lib/modules/. */
  dir: string;
  /** The kernel image. */
  vmlinuz: string;
}

function aptOptions(spec: KernelSpec): string[] {
  const sandbox = ["-o", "APT::Sandbox::User=root", "-q"];
  if (spec.suite === "bookworm") return sandbox;
  const a = `${CACHE_DIR}/apt`;
  return [
    ...sandbox,
    "-o",
    "Dir::Etc::SourceList=/dev/null",
    "-o",
    `Dir::Etc::SourceParts=${a}/sources`,
    "-o",
    `Dir::State::Lists=${a}/lists`,
    "-o",
    `Dir::Cache=${a}/cache`,
  ];
}

/** The Debian mirror the host's apt uses (deb822 or one-line sources), for the private list. */
function hostMirror(): string {
  const files = ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"];
  for (const f of files) {
    let text: string;
    try {
      text = Deno.readTextFileSync(f);
    } catch {
      continue; // not this style of sources
    }
    const m = /^URIs:\s*(\S+)/m.exec(text) ??
      /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
    if (m) return m[1];
  }
  return "http://deb.debian.org/debian";
}

/** A private apt state that knows bookworm-backports; /etc/apt is not touched. */
async function privateApt(spec: KernelSpec): Promise<void> {
  const a = `${CACHE_DIR}/apt`;
  for (const d of ["sources", "lists/partial", "cache/archives/partial"]) {
    await Deno.mkdir(`${a}/${d}`, { recursive: true });
  }
  await Deno.writeTextFile(
    `${a}/sources/xtcp2-kernels.sources`,
    [
      "Types: deb",
      `URIs: ${hostMirror()}`,
      `Suites: ${spec.suite}`,
      "Components: main",
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
      "",
    ].join("\n"),
  );
  const stamp = `${a}/updated`;
  let fresh = false;
  try {
    fresh = Date.now() - (Deno.statSync(stamp).mtime?.getTime() ?? 0) < 86_400_000;
  } catch {
    fresh = false;
  }
  if (fresh) return;
  try {
    await run("apt-get", [...aptOptions(spec), "update"]);
    await Deno.writeTextFile(stamp, new Date().toISOString() + "\n");
  } catch (err) {
    // Yesterday's lists still name a kernel, which may well be downloaded already.
    if (!exists(stamp)) throw err;
    console.warn(`kernels: ${spec.suite} lists not refreshed: ${(err as Error).message}`);
  }
}

/**
 * Downloads (once) the kernel package that Debian's `linux-image-amd64` points at in the spec's
 * suite, and takes out of it the kernel image and the modules the VM needs.
 */
export async function fetchKernel(spec: KernelSpec): Promise<KernelTree> {
  if (spec.suite !== "bookworm") await privateApt(spec);
  const opts = aptOptions(spec);
  const deps = await run("apt-cache", [...opts, "depends", "linux-image-amd64"]);
  const pkg = /Depends:\s*(linux-image-\S+)/.exec(deps.stdout)?.[1];
  if (!pkg || !pkg.startsWith(`linux-image-${spec.label}.`)) {
    throw new Error(
      `apt's linux-image-amd64 in ${spec.suite} is not a ${spec.label} kernel: ${
        pkg ?? deps.stdout.trim()
      }`,
    );
  }
  const debs = `${CACHE_DIR}/debs`;
  await Deno.mkdir(debs, { recursive: true });
  const findDeb = () => [...Deno.readDirSync(debs)].find((e) => e.name.startsWith(`${pkg}_`));
  if (!findDeb()) await run("apt-get", [...opts, "download", pkg], debs);
  const entry = findDeb();
  if (!entry) throw new Error(`apt-get download ${pkg} left no package in ${debs}`);
  const deb = `${debs}/${entry.name}`;
  const version = (await run("dpkg-deb", ["-f", deb, "Version"])).stdout.trim();
  const dir = `${CACHE_DIR}/${pkg}_${version}`;
  if (!exists(`${dir}/.complete`)) await extractKernel(deb, dir);
  await prune(spec, [deb, dir]);
  const boot = [...Deno.readDirSync(`${dir}/boot`)].find((e) => e.name.startsWith("vmlinuz-"));
  if (!boot) throw new Error(`${deb} has no boot/vmlinuz-*`);
  return {
    spec,
    pkg,
    version,
    release: boot.name.slice("vmlinuz-".length),
    dir,
    vmlinuz: `${dir}/boot/${boot.name}`,
  };
}

/** Removes the packages and trees of this kernel's earlier ABIs (all but `keep`). */
async function prune(spec: KernelSpec, keep: string[]): Promise<void> {
  const prefix = `linux-image-${spec.label}.`;
  for (const dir of [CACHE_DIR, `${CACHE_DIR}/debs`]) {
    for (const e of Deno.readDirSync(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.name.startsWith(prefix) && !keep.includes(path)) {
        await Deno.remove(path, { recursive: true });
      }
    }
  }
}

/** Extracts boot/vmlinuz-* and the wanted modules (whichever exist: others are built in). */
async function extractKernel(deb: string, dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await Deno.mkdir(dir, { recursive: true });
  const list = await run("bash", [
    "-o",
    "pipefail",
    "-c",
    'dpkg-deb --fsys-tarfile "$1" | tar -t',
    "list",
    deb,
  ]);
  const wanted = new Set([...NINEP_MODULES, ...DIAG_MODULES]);
  const members = list.stdout.split("\n").filter((m) => {
    if (/^\.\/boot\/vmlinuz-[^/]+$/.test(m)) return true;
    const k = /^\.\/lib\/modules\/[^/]+\/kernel\/(.+)\.ko(\.xz)?$/.exec(m);
    return k !== null && wanted.has(k[1]);
  });
  await run("bash", [
    "-o",
    "pipefail",
    "-c",
    'deb=$1; dir=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" "$@"',
    "extract",
    deb,
    dir,
    ...members,
  ]);
  await Deno.writeTextFile(`${dir}/.complete`, members.join("\n") + "\n");
}

/** Shared libraries of an ELF binary, as ldd resolves them (absolute paths). */
async function libraries(binary: string): Promise<string[]> {
  const out = await run("ldd", [binary]);
  const libs: string[] = [];
  for (const line of out.stdout.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]);
  }
  return libs;
}

/** One entry of a newc cpio archive. */
type CpioEntry =
  | { path: string; kind: "dir" }
  | { path: string; kind: "file"; data: Uint8Array; mode: number }
  | { path: string; kind: "symlink"; target: string };

/** A `newc` cpio archive (what the kernel unpacks as its initramfs), uncompressed. */
function cpio(entries: CpioEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    size += b.length;
    const pad = (4 - (size % 4)) % 4;
    if (pad) {
      parts.push(new Uint8Array(pad));
      size += pad;
    }
  };
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  const header = (ino: number, mode: number, nlink: number, len: number, name: string) => {
    // c_ino c_mode c_uid c_gid c_nlink c_mtime c_filesize c_devmajor c_devminor c_rdevmajor
    // c_rdevminor c_namesize c_check, then the name; header and name are padded to 4 together.
    const nameBytes = enc.encode(name + "\0");
    const fields = [ino, mode, 0, 0, nlink, 0, len, 0, 0, 0, 0, nameBytes.length, 0];
    const head = enc.encode("070701" + fields.map(hex).join(""));
    const b = new Uint8Array(head.length + nameBytes.length);
    b.set(head);
    b.set(nameBytes, head.length);
    push(b);
  };
  let ino = 1;
  for (const e of entries) {
    if (e.kind === "dir") header(ino++, 0o040755, 2, 0, e.path);
    else if (e.kind === "file") {
      header(ino++, 0o100000 | e.mode, 1, e.data.length, e.path);
      push(e.data);
    } else {
      const t = enc.encode(e.target);
      header(ino++, 0o120777, 1, t.length, e.path);
      push(t);
    }
  }
  header(0, 0, 1, 0, "TRAILER!!!");
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Builds the initramfs of a kernel (uncompressed: nothing to unpack on a software CPU): busybox,
 * `init.sh` as /init, the host's `ip` and `ss`, the shared libraries of those and of Deno, and the
 * 9p and diag modules, decompressed, with busybox's modules.dep and modules.alias so that a
 * modprobe finds them.
 */
export async function buildInitrd(tree: KernelTree, tools: HostTools): Promise<string> {
  const stage = await Deno.makeTempDir({ prefix: "xtcp2-initrd-" });
  try {
    const put = async (path: string, data: Uint8Array, mode = 0o644) => {
      const full = `${stage}${path}`;
      await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
      await Deno.writeFile(full, data, { mode });
    };
    await put("/init", await Deno.readFile(new URL("./init.sh", import.meta.url)), 0o755);
    await put("/bin/busybox", await Deno.readFile(tools.busybox), 0o755);
    await put("/usr/sbin/ip", await Deno.readFile(tools.ip), 0o755);
    await put("/usr/bin/ss", await Deno.readFile(tools.ss), 0o755);
    const libs = new Set<string>();
    for (const bin of [Deno.execPath(), tools.ip, tools.ss]) {
      for (const l of await libraries(bin)) libs.add(l);
    }
    for (const l of libs) await put(l, await Deno.readFile(l), 0o755);
    // glibc finds its libraries through /lib64 and /lib/x86_64-linux-gnu, both real here.
    await put("/etc/passwd", new TextEncoder().encode("root:x:0:0:root:/tmp/home:/bin/sh\n"));
    await put("/etc/group", new TextEncoder().encode("root:x:0:\n"));
    await put(
      "/etc/hosts",
      new TextEncoder().encode("127.0.0.1 localhost xk-guest\n::1 localhost ip6-localhost\n"),
    );
    const kdir = `lib/modules/${tree.release}/kernel`;
    const order: string[] = [];
    for (const m of [...NINEP_MODULES, ...DIAG_MODULES]) {
      const base = `${tree.dir}/${kdir}/${m}`;
      const target = `/${kdir}/${m}.ko`;
      if (exists(`${base}.ko`)) await put(target, await Deno.readFile(`${base}.ko`));
      else if (exists(`${base}.ko.xz`)) {
        // busybox's insmod and modprobe want plain .ko files.
        const out = await new Deno.Command("xz", {
          args: ["-dc", `${base}.ko.xz`],
          stdout: "piped",
          stderr: "piped",
        }).output();
        if (!out.success) {
          throw new Error(`xz -dc ${base}.ko.xz failed: ${new TextDecoder().decode(out.stderr)}`);
        }
        await put(target, out.stdout);
      } else continue; // built into this kernel
      if (NINEP_MODULES.includes(m)) order.push(`kernel/${m}`);
    }
    await put("/xk-modules", new TextEncoder().encode(order.join("\n") + "\n"));
    await run(tools.busybox, ["depmod", "-b", stage, tree.release]);

    const entries: CpioEntry[] = [];
    const walk = async (rel: string) => {
      const names = [...Deno.readDirSync(`${stage}${rel}`)].sort((a, b) =>
        a.name.localeCompare(b.name)
      );
      for (const e of names) {
        const path = `${rel}/${e.name}`;
        const full = `${stage}${path}`;
        if (e.isSymlink) {
          entries.push({ path: path.slice(1), kind: "symlink", target: Deno.readLinkSync(full) });
        } else if (e.isDirectory) {
          entries.push({ path: path.slice(1), kind: "dir" });
          await walk(path);
        } else {
          const mode = (Deno.statSync(full).mode ?? 0o644) & 0o7777;
          entries.push({
            path: path.slice(1),
            kind: "file",
            data: await Deno.readFile(full),
            mode,
          });
        }
      }
    };
    await walk("");
    const out = `${CACHE_DIR}/initrd-${tree.spec.label}.cpio`;
    await Deno.writeFile(out, cpio(entries));
    return out;
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

/** The npm cache of the host's Deno (shared read-only: the guest has no network). */
export async function npmCache(): Promise<string> {
  const out = await run(Deno.execPath(), ["info", "--json"]);
  const dir = (JSON.parse(out.stdout) as { npmCache?: string }).npmCache;
  if (!dir) throw new Error("deno info --json names no npmCache");
  return dir;
}

/** How to boot. */
export interface BootOptions {
  /** Boot name: the output directory is runs/<name>. */
  name: string;
  /** Whether the guest has a /sbin/modprobe (kernel module autoloading). */
  modprobe: boolean;
  /** Written to the output directory as plan.json for guest.ts. */
  plan: Record<string, unknown>;
  /** Kill QEMU after this long. */
  timeoutMs: number;
  /** Guest memory in MiB (default 1536). */
  memMb?: number;
}

/** What a boot left behind. */
export interface BootResult {
  /** Output directory (the guest's /xk/out). */
  out: string;
  /** Serial console, each line stamped with seconds since QEMU started. */
  log: string;
  /** Wall time of the boot in ms, QEMU start to exit. */
  ms: number;
  /** QEMU's exit status. */
  code: number;
  /** Whether QEMU was killed at the timeout. */
  timedOut: boolean;
}

/** Boots `tree` with `initrd` once and waits for the guest to power off. */
export async function boot(
  tree: KernelTree,
  initrd: string,
  tools: HostTools,
  npm: string,
  opts: BootOptions,
): Promise<BootResult> {
  const out = `${CACHE_DIR}/runs/${opts.name}`;
  await Deno.remove(out, { recursive: true }).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(`${out}/plan.json`, JSON.stringify(opts.plan, null, 2) + "\n");
  // The guest's DENO_DIR (without npm) survives between boots of the same name: transpiled
  // modules and V8's code cache take seconds to remake on a software CPU.
  const denoDir = `${CACHE_DIR}/deno-dir/${opts.name}`;
  await Deno.mkdir(denoDir, { recursive: true });
  const share = (tag: string, path: string, ro: boolean) => [
    "-virtfs",
    `local,path=${path},mount_tag=${tag},security_model=none,id=${tag}${ro ? ",readonly=on" : ""}`,
  ];
  const bin = Deno.execPath().slice(0, Deno.execPath().lastIndexOf("/"));
  if (!Deno.execPath().endsWith("/deno")) {
    throw new Error(`the guest runs <dir>/deno, but this Deno is ${Deno.execPath()}`);
  }
  const args = [
    "-machine",
    "q35",
    "-accel",
    tools.accel,
    "-cpu",
    tools.accel === "kvm" ? "host" : "max",
    "-m",
    String(opts.memMb ?? 1536),
    "-smp",
    "1",
    "-nographic",
    "-no-reboot",
    "-nodefaults",
    "-serial",
    "stdio",
    "-kernel",
    tree.vmlinuz,
    "-initrd",
    initrd,
    "-append",
    `console=ttyS0 quiet panic=-1 xk.modprobe=${opts.modprobe ? 1 : 0}`,
    ...share("out", out, false),
    ...share("project", ROOT.replace(/\/$/, ""), true),
    ...share("bin", bin, true),
    ...share("npm", npm, true),
    ...share("cache", denoDir, false),
  ];
  const t0 = performance.now();
  const child = new Deno.Command(tools.qemu, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  }, opts.timeoutMs);
  const lines: string[] = [];
  const stamp = () => ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  const collect = async (stream: ReadableStream<Uint8Array>, tag: string) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let i;
      while ((i = rest.indexOf("\n")) >= 0) {
        lines.push(`[${stamp()}]${tag} ${rest.slice(0, i).replace(/\r$/, "")}`);
        rest = rest.slice(i + 1);
      }
    }
    if (rest) lines.push(`[${stamp()}]${tag} ${rest}`);
  };
  const [status] = await Promise.all([
    child.status,
    collect(child.stdout, ""),
    collect(child.stderr, " qemu:"),
  ]);
  clearTimeout(timer);
  const log = lines.join("\n") + "\n";
  await Deno.writeTextFile(`${out}/serial.log`, log);
  return { out, log, ms: performance.now() - t0, code: status.code, timedOut };
}
