/**
 * The kernel suite's plan: which kernels boot how, a few at a time, and what the host checks in
 * what each boot left behind. Used by tests/kernels_test.ts and tests/kernels/make_captures.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { decodeCapture } from "../../src/netlink/capture.ts";
import { INET_DIAG_INFO } from "../../src/netlink/constants.ts";
import { missingDiagModulesHint } from "../../src/netlink/diag_modules.ts";
import { checkCapturePair } from "../support/records.ts";
import type { GuestResults, Mode, Plan } from "./guest.ts";
import {
  boot,
  type BootResult,
  buildInitrd,
  fetchKernel,
  type HostTools,
  hostTools,
  KERNELS,
  type KernelTree,
  npmCache,
} from "./vm.ts";

/** Established connections of the named namespace (IPv4 and IPv6, 1,000 bytes each way). */
export const CONNS = 200;
/** Established connections of the `unshare -n` namespace. */
export const UNSHARE_CONNS = 20;
/** A boot that has not powered off by then is killed (TCG on 2 shared cores: generous). */
export const BOOT_TIMEOUT_MS = Number(Deno.env.get("XTCP2_KERNEL_BOOT_TIMEOUT_MS") ?? 150_000);
/** VMs at once (one vCPU each). */
export const JOBS = Number(Deno.env.get("XTCP2_KERNEL_JOBS") ?? 2);

/** Everything a boot needs, ready. */
export interface Prepared {
  tools: HostTools;
  npm: string;
  kernels: { tree: KernelTree; initrd: string }[];
  /** Time spent fetching and building, ms. */
  ms: number;
}

/**
 * Finds the host tools, fetches the kernels and builds their initramfs. Returns why the suite
 * cannot run here (missing tools, kernels that cannot be fetched) instead of throwing.
 */
export async function prepare(): Promise<Prepared | string> {
  const t0 = performance.now();
  const tools = await hostTools();
  if (typeof tools === "string") return tools;
  const trees: KernelTree[] = [];
  for (const spec of KERNELS) {
    try {
      trees.push(await fetchKernel(spec));
    } catch (err) {
      return `cannot fetch Debian's ${spec.label} kernel: ${(err as Error).message}`;
    }
  }
  const npm = await npmCache();
  const kernels = [];
  for (const tree of trees) kernels.push({ tree, initrd: await buildInitrd(tree, tools) });
  return { tools, npm, kernels, ms: performance.now() - t0 };
}

/** One boot and what the guest reported. */
export interface Booted {
  tree: KernelTree;
  mode: Mode;
  boot: BootResult;
  /** The guest's results.json, if it wrote one. */
  results?: GuestResults;
}

/** Boots every kernel in every mode, {@link JOBS} at a time; one promise per boot, in order. */
export function bootAll(p: Prepared, modes: readonly Mode[]): Promise<Booted>[] {
  let active = 0;
  const waiting: (() => void)[] = [];
  const limited = <T>(fn: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const go = () => {
        active++;
        fn().then(resolve, reject).finally(() => {
          active--;
          waiting.shift()?.();
        });
      };
      if (active < JOBS) go();
      else waiting.push(go);
    });
  const out: Promise<Booted>[] = [];
  for (const mode of modes) {
    for (const { tree, initrd } of p.kernels) {
      out.push(limited(async () => {
        const plan: Plan = {
          mode,
          conns: CONNS,
          unshareConns: UNSHARE_CONNS,
          kernelPackage: `${tree.pkg} ${tree.version}`,
        };
        const b = await boot(tree, initrd, p.tools, p.npm, {
          name: `${tree.spec.label}-${mode}`,
          modprobe: mode === "autoload",
          plan: plan as unknown as Record<string, unknown>,
          timeoutMs: BOOT_TIMEOUT_MS,
        });
        let results: GuestResults | undefined;
        try {
          results = JSON.parse(await Deno.readTextFile(`${b.out}/results.json`));
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        }
        return { tree, mode, boot: b, ...(results ? { results } : {}) };
      }));
    }
  }
  return out;
}

/** The end of a boot's serial console, for failure messages. */
export function tail(b: Booted, lines = 40): string {
  return b.boot.log.trimEnd().split("\n").slice(-lines).join("\n");
}

/** tcp_info (INET_DIAG_INFO) payload lengths of every socket of a capture → sockets. */
export function tcpInfoLengths(pcap: string): Map<number, number> {
  const lens = new Map<number, number>();
  decodeCapture(Deno.readFileSync(pcap), pcap, -1, (v) => {
    if (v.attrOff[INET_DIAG_INFO] < 0) return;
    const len = v.attrLen[INET_DIAG_INFO];
    lens.set(len, (lens.get(len) ?? 0) + 1);
  });
  return lens;
}

/** Asserts that the guest finished, and returns its results. */
export function finished(b: Booted): GuestResults {
  const where = `${b.tree.spec.label} ${b.mode}`;
  assert.ok(!b.boot.timedOut, `${where}: killed after ${BOOT_TIMEOUT_MS} ms:\n${tail(b)}`);
  assert.ok(b.results, `${where}: the guest wrote no results:\n${tail(b)}`);
  assert.ok(b.results.finished, `${where}: the guest stopped midway:\n${tail(b)}`);
  assert.ok(
    b.results.release.startsWith(`${b.tree.spec.label}.`),
    `${where}: booted ${b.results.release}`,
  );
  return b.results;
}

/**
 * Host-side checks of an autoload boot's capture: it decodes here to exactly the sockets of its
 * ss text, every one with the kernel's tcp_info length. Returns sockets and values compared.
 */
export function checkCapture(b: Booted): { sockets: number; values: number } {
  const meta = JSON.parse(Deno.readTextFileSync(`${b.boot.out}/capture.json`));
  const r = checkCapturePair({
    name: `${b.tree.spec.label} (fresh)`,
    pcap: `${b.boot.out}/capture.pcap`,
    ss: `${b.boot.out}/capture.ss`,
    lastTolMs: Number(meta.lastTolMs),
  });
  assert.ok(r.sockets >= 2 * CONNS && r.values > r.sockets * 20, JSON.stringify(r));
  assert.deepEqual([...tcpInfoLengths(`${b.boot.out}/capture.pcap`).keys()], [
    b.tree.spec.tcpInfoLen,
  ]);
  return r;
}

/**
 * Asserts that a capture ends with one kernel error, ENOENT, whose message carries the hint: the
 * answer to the v2 request. A compat request before it (one walk) is refused too: EOPNOTSUPP on
 * a kernel without tcp_diag, after which the daemon falls back to the v2 request.
 */
export function checkEnoentCapture(pcap: string): string {
  const s = decodeCapture(Deno.readFileSync(pcap), pcap, -1, () => {});
  assert.equal(s.stats.sockets, 0, `${pcap}: sockets in an ENOENT capture`);
  assert.ok(s.kernelErrors.length >= 1 && s.kernelErrors.length <= 2, `${pcap}: kernel errors`);
  const last = s.kernelErrors[s.kernelErrors.length - 1];
  assert.ok(last);
  assert.equal(last.errno, 2);
  assert.equal(last.where, "NLMSG_ERROR");
  assert.ok(last.message.endsWith(missingDiagModulesHint()), last.message);
  if (s.kernelErrors.length === 2) assert.equal(s.kernelErrors[0]?.errno, 95); // EOPNOTSUPP
  return last.message;
}
