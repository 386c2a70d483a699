/**
 * Writing a whole buffer to something that may take only part of it per call.
 *
 * @module
 */

/** What takes bytes synchronously (Deno.FsFile, Deno.stdout). */
export interface SyncWriter {
  /** Writes some of `b`; returns how many bytes. */
  writeSync(b: Uint8Array): number;
}

/** What takes bytes asynchronously (Deno.Conn, Deno.FsFile). */
export interface AsyncWriter {
  /** Writes some of `b`; resolves with how many bytes. */
  write(b: Uint8Array): Promise<number>;
}

/**
 * Writes every byte of `b`, synchronously.
 *
 * @example
 * ```ts
 * writeAllSync(Deno.stdout, new TextEncoder().encode("hello\n"));
 * ```
 */
export function writeAllSync(w: SyncWriter, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += w.writeSync(b.subarray(off));
}

/**
 * Writes every byte of `b`.
 *
 * @example
 * ```ts
 * const conn = await Deno.connect({ port: 4150 });
 * await writeAll(conn, new TextEncoder().encode("  V2"));
 * ```
 */
export async function writeAll(w: AsyncWriter, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await w.write(b.subarray(off));
}
