/**
 * Writes the first N netlink datagrams the daemon sends and receives into an nlmon-style pcap
 * (`--writeFiles N --capturePath P`), readable by tshark and by `xtcp2 decode`.
 *
 * @module
 */
import { pcapFileHeader, pcapRecord } from "../netlink/pcap.ts";
import { writeAllSync } from "../util/write_all.ts";

/** Captures datagrams into `<capturePath>netlink.<timestamp>.pcap`. */
export class CaptureWriter implements Disposable {
  /** The pcap file path. */
  readonly path: string;
  /** Datagrams still to write. */
  remaining: number;
  private file: Deno.FsFile | undefined;

  /**
   * @param capturePath prefix (a directory ending in `/`, or a file-name prefix)
   * @param limit number of datagrams to write
   */
  constructor(capturePath: string, limit: number) {
    const stamp = new Date().toISOString().replace(/:/g, "-");
    this.path = `${capturePath}netlink.${stamp}.pcap`;
    this.remaining = limit;
  }

  /** Writes one datagram (synchronously, so it is on disk even if the process dies). */
  write(bytes: Uint8Array, outgoing: boolean): void {
    if (this.remaining <= 0) return;
    if (!this.file) {
      this.file = Deno.openSync(this.path, {
        write: true,
        create: true,
        truncate: true,
        mode: 0o600, // netlink dumps show every connection of the host: not for everyone
      });
      writeAllSync(this.file, pcapFileHeader());
    }
    writeAllSync(this.file, pcapRecord(bytes, outgoing, Date.now()));
    if (--this.remaining === 0) this.close();
  }

  /** Closes the file. */
  close(): void {
    this.file?.close();
    this.file = undefined;
    this.remaining = 0;
  }

  /** Same as {@link CaptureWriter.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
