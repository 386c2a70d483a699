/**
 * `file:PATH`. Line formats append to PATH and rotate it to `PATH.<time>` above fileMaxBytes or
 * after fileMaxAge. protobufList (exactly one envelope per file, or ClickHouse cannot read it)
 * and the other message formats write each flush to its own `PATH.<time>-<n>.binpb` via a
 * temporary name, so a reader never sees a half-written file. Files are created 0600.
 *
 * @module
 */
import { writeAllSync } from "../util/write_all.ts";
import { type DestOptions, type Framing, SyncDest } from "./destination.ts";

function fileStamp(): string {
  return new Date().toISOString().replace(/:/g, "-");
}

/** Writes flushes to files. */
export class FileDest extends SyncDest {
  /** Always "file". */
  readonly scheme = "file";
  private file: Deno.FsFile | undefined;
  private size = 0;
  private openedAt = 0;
  private seq = 0;

  /**
   * @param path the file (line formats) or the prefix of the per-flush files; its directory is
   * created if missing
   * @param opts rotation limits, marshaller, counters
   */
  constructor(private readonly path: string, private readonly opts: DestOptions) {
    super();
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
    if (dir) Deno.mkdirSync(dir, { recursive: true });
  }

  /** Writes one flush. */
  sendSync(bytes: Uint8Array, framing: Framing): void {
    if (
      this.opts.marshal === "protobufList" ||
      (framing === "message" && this.opts.marshal !== "protoJson")
    ) {
      const name = `${this.path}.${fileStamp()}-${String(this.seq++).padStart(6, "0")}.binpb`;
      const tmp = `${name}.tmp`;
      Deno.writeFileSync(tmp, bytes, { mode: 0o600 });
      Deno.renameSync(tmp, name);
      this.opts.counters.inc("destFile", "files");
      return;
    }
    const now = Date.now();
    if (
      this.file && (this.size + bytes.length > this.opts.fileMaxBytes ||
        now - this.openedAt > this.opts.fileMaxAgeMs)
    ) {
      this.file.close();
      this.file = undefined;
      Deno.renameSync(this.path, `${this.path}.${fileStamp()}`);
      this.opts.counters.inc("destFile", "rotate");
    }
    if (!this.file) {
      this.file = Deno.openSync(this.path, { append: true, create: true, mode: 0o600 });
      this.size = Deno.statSync(this.path).size;
      this.openedAt = now;
    }
    writeAllSync(this.file, bytes);
    this.size += bytes.length;
  }

  /** Closes the open file. */
  [Symbol.asyncDispose](): Promise<void> {
    this.file?.close();
    this.file = undefined;
    return Promise.resolve();
  }
}
