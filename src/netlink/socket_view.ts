/**
 * A zero-copy view of one inet_diag reply message: where its `inet_diag_msg` and each attribute
 * payload start in the receive buffer. One view is reused for every socket; nothing is copied or
 * allocated per socket.
 *
 * @module
 */
import { MAX_ATTR_TYPE } from "./constants.ts";

/**
 * Locates the attributes of the message payload `[start, end)` of the view's buffer into its
 * table (as parse.ts locateAttributes does); returns what it counted: attrErrors | attrShort << 2
 * | attrSkipped << 8.
 */
export type AttributeLocator = (start: number, end: number, mask: number) => number;

/** One inet_diag message in a buffer. Fields are valid until the next message is decoded. */
export class SocketView {
  /** The buffer holding the message. */
  u8: Uint8Array = new Uint8Array(0);
  /** DataView over the same bytes as `u8`. */
  dv: DataView = new DataView(new ArrayBuffer(0));
  /** Offset of the 72-byte `inet_diag_msg`. */
  msg = 0;
  /** Index of the message within its datagram (the record's `record_counter`). */
  index = 0;
  /** Datagrams walked with this view (changes with each datagram, even in the same buffer). */
  datagram = 0;
  /** End of the datagram in `u8` (its messages lie in `[0, end)`). */
  end = 0;
  /** Payload offset of each attribute type, or -1 when absent. */
  readonly attrOff: Int32Array;
  /** Payload length of each attribute type (valid where `attrOff` ≥ 0). */
  readonly attrLen: Int32Array;
  /** Bit N set: `attrOff[N]` was set by the last locate (it clears only these). */
  present = 0;
  /** Locates attributes in place of parse.ts locateAttributes (the encoder's, in its memory). */
  readonly locate: AttributeLocator | undefined;

  /**
   * @param table where to keep the attribute table (MAX_ATTR_TYPE entries each; e.g. in the
   * memory of the encoder that reads it), default: arrays of its own; and what fills it (the
   * views's buffer must be the one `locate` reads), default: locateAttributes
   */
  constructor(
    table?: { attrOff: Int32Array; attrLen: Int32Array; locate?: AttributeLocator },
  ) {
    this.attrOff = (table?.attrOff ?? new Int32Array(MAX_ATTR_TYPE)).fill(-1);
    this.attrLen = table?.attrLen ?? new Int32Array(MAX_ATTR_TYPE);
    this.locate = table?.locate;
    if (this.attrOff.length < MAX_ATTR_TYPE || this.attrLen.length < MAX_ATTR_TYPE) {
      throw new RangeError(`An attribute table needs ${MAX_ATTR_TYPE} entries`);
    }
  }

  /** idiag_family: 2 or 10. */
  get family(): number {
    return this.u8[this.msg];
  }
  /** idiag_state. */
  get state(): number {
    return this.u8[this.msg + 1];
  }
  /** Source port (host order). */
  get sport(): number {
    return this.dv.getUint16(this.msg + 4, false);
  }
  /** Destination port (host order). */
  get dport(): number {
    return this.dv.getUint16(this.msg + 6, false);
  }
  /** Socket inode. */
  get inode(): number {
    return this.dv.getUint32(this.msg + 68, true);
  }
  /** Whether attribute `type` is present. */
  has(type: number): boolean {
    return this.attrOff[type] >= 0;
  }
}
