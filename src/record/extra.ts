/**
 * What the daemon adds to one socket's record besides the kernel's fields and the namespace's
 * stamp: its owning process (`--socketOwners`) and the closed flag (`--changesOnly`). One object
 * is reused for every socket; the encoder writes it after the kernel fields (2200 and up).
 *
 * @module
 */

const NO_COMM = new Uint8Array(0);

/**
 * Per-socket additions to a record. Reuse one and {@link RecordExtra.clear} it between sockets.
 *
 * @example
 * ```ts
 * const extra = new RecordExtra();
 * extra.ownerPid = 1234;
 * extra.ownerComm = new TextEncoder().encode("nginx");
 * env.add(view, stamp, extra);
 * ```
 */
export class RecordExtra {
  /** `socket_owner_pid` (2200); 0 = none. */
  ownerPid = 0;
  /** `socket_owner_comm` (2201) as printable ASCII bytes (at most 64); empty = none. */
  ownerComm: Uint8Array = NO_COMM;
  /** `closed` (2210). */
  closed = false;

  /** Back to nothing added. */
  clear(): void {
    this.ownerPid = 0;
    this.ownerComm = NO_COMM;
    this.closed = false;
  }

  /** Bytes {@link encodeExtra} may write at most. */
  get maxBytes(): number {
    return 3 + 5 + 3 + 1 + this.ownerComm.length + 3 + 1;
  }
}

/**
 * Writes the fields of `x` into `o` at `p` (room for {@link RecordExtra.maxBytes} ensured by the
 * caller); returns the new position. Field-number order, defaults omitted.
 */
export function encodeExtra(x: RecordExtra, o: Uint8Array, p: number): number {
  let v = x.ownerPid;
  if (v !== 0) {
    o[p] = 0xc0; // 2200 << 3: c0 89 01
    o[p + 1] = 0x89;
    o[p + 2] = 0x01;
    p += 3;
    while (v > 0x7f) {
      o[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    o[p++] = v;
  }
  const comm = x.ownerComm;
  const n = comm.length;
  if (n !== 0) {
    o[p] = 0xca; // 2201 << 3 | 2: ca 89 01
    o[p + 1] = 0x89;
    o[p + 2] = 0x01;
    o[p + 3] = n; // at most 64
    p += 4;
    for (let i = 0; i < n; i++) o[p + i] = comm[i];
    p += n;
  }
  if (x.closed) {
    o[p] = 0x90; // 2210 << 3: 90 8a 01
    o[p + 1] = 0x8a;
    o[p + 2] = 0x01;
    o[p + 3] = 1;
    p += 4;
  }
  return p;
}
