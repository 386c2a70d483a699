/**
 * Runs the real `xtcp2` entrypoint as a subprocess, as users do.
 *
 * @module
 */

const MAIN = new URL("../../src/cmd/xtcp2.ts", import.meta.url).pathname;

/** Runs xtcp2 with the task's permission flags; `prefix` wraps it (e.g. ip netns exec). */
export async function xtcp2(
  args: string[],
  opts: { prefix?: string[]; perms?: string[] } = {},
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const perms = opts.perms ??
    [
      "--allow-ffi",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-net",
      "--allow-sys=hostname",
    ];
  const prefix = opts.prefix ?? [];
  const argv = [...prefix, Deno.execPath(), "run", "--quiet", ...perms, MAIN, ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}
