/**
 * Command-line helpers shared by the entrypoints: Go-style flags (`-maxLoops 1`,
 * `-dest=stdout`) are accepted next to `--maxLoops 1`, as the original's unit files use them.
 *
 * @module
 */

/** Rewrites single-dash long flags (`-maxLoops`) to double-dash ones; `-v`/`-h` stay as they are. */
export function normalizeGoFlags(args: readonly string[]): string[] {
  return args.map((a) => (/^-[A-Za-z][\w.]+(=.*)?$/.test(a) ? "-" + a : a));
}

/** An invalid command line: printed as one line, exit status 2. */
export class UsageError extends Error {
  /** @param message what is wrong, naming the flag and value */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
