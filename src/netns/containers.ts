/**
 * Which container each namespace belongs to: from the Docker Engine API (`-enrichContainer`:
 * dockerd's or podman's socket; id, name, image, and the runtime the engine names), else from
 * the cgroup of a process inside it (`-resolveContainerId`: `/proc/<pid>/cgroup` leaves
 * `/docker/<id>`, `docker-<id>.scope`, `libpod-<id>`, `cri-containerd-<id>`, `crio-<id>`; id
 * and runtime only). Lookups are map reads: the API is asked off the poll path, when namespaces
 * appear or vanish and every relist period, one refresh at a time, each request bounded in
 * time. Failures are counted (`enrichContainer/docker/error`) and leave the columns as they were.
 *
 * @module
 */
import { netnsInode, readSmallFile } from "../../ffi/libc.ts";
import type { StampValue } from "../record/stamp.ts";
import { errorMessage } from "../util/errors.ts";
import type { Counters, Logger } from "../util/log.ts";
import type { NsInfo } from "./discovery.ts";
import { DockerApi, DockerApiError } from "./docker.ts";

/** A namespace's container. */
export interface ContainerMeta {
  id: string;
  /** docker, podman, containerd, crio; "" when the cgroup path does not say. */
  runtime: string;
  /** From the API only. */
  name?: string;
  /** From the API only. */
  image?: string;
}

const ID = "([0-9a-f]{64})";
/**
 * cgroup path components of container runtimes (systemd `.scope` units or cgroupfs directories),
 * the leaf or the parent of one (systemd's podman puts the process in `libpod-<id>.scope/container`).
 */
const CGROUP_LEAVES: readonly (readonly [RegExp, string])[] = [
  [new RegExp(`/libpod-${ID}(?:\\.scope)?(?:/|$)`, "m"), "podman"],
  [new RegExp(`/cri-containerd-${ID}(?:\\.scope)?(?:/|$)`, "m"), "containerd"],
  [new RegExp(`/crio-${ID}(?:\\.scope)?(?:/|$)`, "m"), "crio"],
  [new RegExp(`/docker[-/]${ID}(?:\\.scope)?(?:/|$)`, "m"), "docker"],
];
const BARE = new RegExp(`/${ID}$`, "m");

/**
 * The container named by the text of a `/proc/<pid>/cgroup`, or undefined.
 *
 * @example
 * ```ts
 * containerFromCgroup(`9:pids:/libpod_parent/libpod-${"a".repeat(64)}`);
 * // { id: "aaaa…", runtime: "podman" }
 * ```
 */
export function containerFromCgroup(text: string): ContainerMeta | undefined {
  for (const [re, runtime] of CGROUP_LEAVES) {
    const m = re.exec(text);
    if (m?.[1]) return { id: m[1], runtime };
  }
  const bare = BARE.exec(text)?.[1];
  return bare ? { id: bare, runtime: "" } : undefined;
}

/** Options of {@link ContainerIndex}. */
export interface ContainerOptions {
  /** Ask the Docker Engine API at this socket. */
  docker?: {
    socket: string;
    /** Bound of each request (ms). */
    timeoutMs: number;
    /** A full relist this often (ms), besides every change of namespaces. */
    relistMs: number;
  };
  /** Fall back on `/proc/<pid>/cgroup`. */
  cgroup: boolean;
  /** procfs root; default `/proc`. */
  proc?: string;
  counters: Counters;
  log: Logger;
}

interface Inspected {
  /** The container's namespace inode, when it could be found. */
  inode: bigint | undefined;
  meta: ContainerMeta;
}

/** Containers by namespace inode. */
export class ContainerIndex implements Disposable {
  private byInode = new Map<bigint, ContainerMeta>();
  private readonly cgroups = new Map<bigint, ContainerMeta | null>();
  private known = new Set<bigint>();
  private inspected = new Map<string, Inspected>();
  private readonly api: DockerApi | undefined;
  private runtime: string | undefined;
  private refreshing: Promise<void> | undefined;
  private again = false;
  private failing = false;
  private readonly stop = new AbortController();
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private readonly proc: string;

  /** @param opts sources and their bounds */
  constructor(private readonly opts: ContainerOptions) {
    this.proc = opts.proc ?? "/proc";
    const d = opts.docker;
    if (d) {
      this.api = new DockerApi(d.socket, d.timeoutMs, this.stop.signal);
      if (d.relistMs > 0) {
        this.timer = setInterval(() => void this.refresh(), d.relistMs);
        Deno.unrefTimer(this.timer);
      }
    }
  }

  /**
   * The namespaces now (after each reconcile): new ones get their cgroup read, vanished ones are
   * forgotten, and any change starts an API refresh (not awaited).
   */
  update(namespaces: Iterable<NsInfo>): void {
    const now = new Set<bigint>();
    let changed = false;
    for (const ns of namespaces) {
      now.add(ns.inode);
      if (!this.known.has(ns.inode)) changed = true;
      if (this.opts.cgroup && !this.cgroups.has(ns.inode) && ns.pid !== undefined) {
        this.cgroups.set(ns.inode, this.fromCgroup(ns.pid));
      }
    }
    for (const ino of this.known) {
      if (now.has(ino)) continue;
      changed = true;
      this.cgroups.delete(ino);
      this.byInode.delete(ino);
    }
    this.known = now;
    if (changed) void this.refresh();
  }

  private fromCgroup(pid: number): ContainerMeta | null {
    try {
      return containerFromCgroup(readSmallFile(`${this.proc}/${pid}/cgroup`)) ?? null;
    } catch (err) {
      this.opts.counters.inc("enrichContainer", "cgroup", "error");
      this.opts.log.debug(`cgroup of pid ${pid}: ${errorMessage(err)}`);
      return null;
    }
  }

  /** The container of a namespace: the API's answer first, else its cgroup's. */
  of(info: NsInfo): ContainerMeta | undefined {
    return this.byInode.get(info.inode) ?? this.cgroups.get(info.inode) ?? undefined;
  }

  /**
   * The stamp fields of a namespace: the container columns, and (from the API) the container's
   * name as `netns` when the namespace has no better name than `netns:[inode]`.
   */
  fields(info: NsInfo): Record<string, StampValue | undefined> {
    const c = this.of(info);
    if (!c) return {};
    return {
      container_id: c.id,
      container_runtime: c.runtime,
      container_name: c.name,
      container_image: c.image,
      ...(c.name && info.name.startsWith("netns:[") ? { netns: c.name } : {}),
    };
  }

  /**
   * Asks the API again (one refresh at a time: a request during one runs another after it).
   * Resolves when done; never rejects (failures are counted and logged).
   */
  refresh(): Promise<void> {
    if (!this.api) return Promise.resolve();
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    const api = this.api;
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.relist(api);
      } while (this.again && !this.stop.signal.aborted);
    })().finally(() => this.refreshing = undefined);
    return this.refreshing;
  }

  /** Resolves when the refresh in flight (if any) is done. */
  settled(): Promise<void> {
    return this.refreshing ?? Promise.resolve();
  }

  private inodeOf(sandboxKey: string, pid: number): bigint | undefined {
    if (sandboxKey) {
      try {
        const ino = Deno.statSync(sandboxKey).ino;
        if (ino !== null) return BigInt(ino);
      } catch { /* gone, or not visible here: try its process */ }
    }
    if (pid > 0) {
      try {
        return netnsInode(`${this.proc}/${pid}/ns/net`);
      } catch { /* exited, or in another PID namespace */ }
    }
    return undefined;
  }

  private async relist(api: DockerApi): Promise<void> {
    const c = this.opts.counters;
    try {
      this.runtime ??= (await api.engine()).runtime;
      const next = new Map<string, Inspected>();
      for (const id of await api.running()) {
        const prev = this.inspected.get(id);
        // A container keeps its namespace while it runs: inspect only new ones (or restarted).
        if (prev?.inode !== undefined && this.known.has(prev.inode)) {
          next.set(id, prev);
          continue;
        }
        try {
          const d = await api.inspect(id);
          const meta: ContainerMeta = {
            id: d.id,
            runtime: this.runtime,
            ...(d.name ? { name: d.name } : {}),
            ...(d.image ? { image: d.image } : {}),
          };
          next.set(id, { inode: this.inodeOf(d.sandboxKey, d.pid), meta });
        } catch (err) {
          if (err instanceof DockerApiError && err.status === 404) continue; // removed meanwhile
          throw err;
        }
      }
      this.inspected = next;
      const byInode = new Map<bigint, ContainerMeta>();
      for (const { inode, meta } of next.values()) {
        if (inode !== undefined) byInode.set(inode, meta);
      }
      this.byInode = byInode;
      c.inc("enrichContainer", "relist");
      if (this.failing) this.opts.log.info(`Docker API at ${api.socket} answers again`);
      this.failing = false;
    } catch (err) {
      if (this.stop.signal.aborted) return;
      c.inc("enrichContainer", "docker", "error");
      this.runtime = undefined; // the engine may be another one when it comes back
      const msg = `Container enrichment: Docker API at ${api.socket}: ${errorMessage(err)}`;
      if (this.failing) this.opts.log.debug(msg);
      else this.opts.log.warn(`${msg} (columns keep what was known; retried)`);
      this.failing = true;
    }
  }

  /** Stops the relist timer and any request in flight. */
  [Symbol.dispose](): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.stop.abort();
  }
}
