/**
 * The kernel modules behind a TCP sock_diag dump. Where `inet_diag` and `tcp_diag` are modules
 * (Debian's 6.1 and 6.12 kernels: `CONFIG_INET_DIAG=m`) and nothing has loaded them, and the
 * kernel cannot load them itself (no `modprobe` reachable, module autoloading disabled), the
 * dump is answered with ENOENT: there is no handler for the request's family or protocol.
 *
 * @module
 */

/** errno of a dump that no sock_diag handler took. */
export const ENOENT = 2;

/** The modules a TCP dump needs, in load order. */
export const DIAG_MODULES: readonly string[] = ["inet_diag", "tcp_diag"];

/**
 * What an ENOENT answer to a dump means, and how to load the missing modules now and at every
 * boot.
 *
 * @example
 * ```ts
 * console.error(`dump failed: ENOENT: ${missingDiagModulesHint()}`);
 * ```
 */
export function missingDiagModulesHint(): string {
  const list = DIAG_MODULES.join(" and ");
  return `no sock_diag handler for TCP in this kernel, whose ${list} modules are not loaded; ` +
    `load them with \`modprobe ${DIAG_MODULES.join(" ")}\`, and at every boot with a file ` +
    `/etc/modules-load.d/xtcp2.conf listing ${list}, one per line`;
}
