/**
 * Startup capability check (capget through FFI): each missing capability is named with why it is
 * needed and how to grant it.
 *
 * @module
 */
import { effectiveCaps } from "../../ffi/libc.ts";

/** A capability the daemon uses. */
export interface CapNeed {
  name: string;
  bit: number;
  fatal: boolean;
  why: string;
  /** Only needed with this setting on (no warning otherwise). */
  onlyWith?: "ioUring";
}

/** What xtcp2 needs, and why. */
export const CAPS: readonly CapNeed[] = [
  { name: "CAP_NET_ADMIN", bit: 12, fatal: true, why: "netlink inet_diag queries" },
  {
    name: "CAP_SYS_ADMIN",
    bit: 21,
    fatal: true,
    why: "setns(CLONE_NEWNET) into network namespaces",
  },
  {
    name: "CAP_SYS_PTRACE",
    bit: 19,
    fatal: false,
    why:
      "reading /proc/<pid>/ns/net of other processes; without it only bind-mounted namespaces are found",
  },
  {
    name: "CAP_NET_RAW",
    bit: 13,
    fatal: false,
    why: "raw-socket destinations (not used by this build's UDP destination)",
  },
  {
    name: "CAP_SYS_RESOURCE",
    bit: 24,
    fatal: false,
    why: "raising RLIMIT_MEMLOCK for io_uring rings (kernels before 5.12)",
    onlyWith: "ioUring",
  },
];

const SNIPPET = [
  "  [Service]",
  "  AmbientCapabilities = CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_NET_RAW CAP_SYS_RESOURCE",
  "  CapabilityBoundingSet = CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_NET_RAW CAP_SYS_RESOURCE",
  "Or (less restricted): run as root.",
];

/**
 * Checks the effective capabilities. Returns warnings for missing optional ones; throws an
 * Error listing the missing required ones (with a systemd snippet) when any is missing.
 */
export function checkCapabilities(
  effective: bigint = effectiveCaps(),
  settings: { ioUring?: boolean } = {},
): string[] {
  const missing = CAPS.filter((c) =>
    (effective & (1n << BigInt(c.bit))) === 0n && (!c.onlyWith || settings[c.onlyWith])
  );
  const fatal = missing.filter((c) => c.fatal);
  if (fatal.length) {
    throw new Error(
      [
        "startup capability check: xtcp2 cannot start — required capabilities missing:",
        ...fatal.map((c) => `  - ${c.name}: ${c.why}`),
        "Grant them, e.g. in the systemd unit:",
        ...SNIPPET,
      ].join("\n"),
    );
  }
  return missing.map((c) => `WARN: missing capability ${c.name} — ${c.why}`);
}
