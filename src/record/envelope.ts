/**
 * The Envelope on the wire: `repeated XtcpFlatRecord row = 10`, each row its tag byte, a varint
 * length and the record; protobufList frames one Envelope as varint(len) ‖ Envelope. Walking
 * rows, unframing and splitting a framed Envelope into smaller complete ones.
 *
 * @module
 */
import { encodeVarint, readVarint, varintSize } from "../util/varint.ts";

/** Field 10 (`row`) of Envelope, wire type 2 (length-delimited): the tag byte of every row. */
export const ROW_TAG = (10 << 3) | 2;

/** Bytes that are not an Envelope where one was expected. */
export class EnvelopeError extends Error {
  /**
   * @param reason what is wrong
   * @param offset where, in the Envelope's bytes
   * @param options the underlying error, if any
   */
  constructor(reason: string, readonly offset: number, options?: ErrorOptions) {
    super(`${reason}: envelope at offset ${offset}`, options);
    this.name = "EnvelopeError";
  }
}

/**
 * Where the row whose tag byte is at `at` ends (its last byte + 1), and where its body starts.
 * Throws EnvelopeError on another tag, a bad length, or a row running past `end`.
 */
export function rowBounds(env: Uint8Array, at: number, end = env.length): [number, number] {
  if (env[at] !== ROW_TAG) throw new EnvelopeError(`Unexpected tag byte ${env[at]}`, at);
  let len: number;
  let body: number;
  try {
    [len, body] = readVarint(env, at + 1, end);
  } catch (err) {
    throw new EnvelopeError("Bad row length", at + 1, { cause: err });
  }
  const rowEnd = body + len;
  if (rowEnd > end) throw new EnvelopeError("Row runs past the end", at);
  return [body, rowEnd];
}

/**
 * Each row of a bare Envelope as a view of its varint length and record bytes: exactly what a
 * message's length-delimited field holds on the wire.
 *
 * @example
 * ```ts
 * for (const row of envelopeRows(writer.envelope())) send(row);
 * ```
 */
export function* envelopeRows(env: Uint8Array): Generator<Uint8Array> {
  for (let p = 0; p < env.length;) {
    const [, end] = rowBounds(env, p);
    yield env.subarray(p + 1, end);
    p = end;
  }
}

/**
 * The Envelope inside one protobufList message (varint length ‖ Envelope). Throws EnvelopeError
 * when the prefix is not exactly the length of what follows.
 *
 * @example
 * ```ts
 * fromBinary(EnvelopeSchema, unframe(Deno.readFileSync("x.binpb")));
 * ```
 */
export function unframe(msg: Uint8Array): Uint8Array {
  let len: number;
  let start: number;
  try {
    [len, start] = readVarint(msg, 0);
  } catch (err) {
    throw new EnvelopeError("Bad protobufList length prefix", 0, { cause: err });
  }
  if (len !== msg.length - start) {
    throw new EnvelopeError(
      `Length prefix ${len} is not the ${msg.length - start} bytes that follow`,
      0,
    );
  }
  return msg.subarray(start);
}

/** Result of a split: the pieces, and what could not fit at all. */
export interface Split {
  /** Each piece fits the limit. */
  pieces: Uint8Array[];
  /** Rows (or lines) larger than the limit on their own: not in any piece, to be counted. */
  dropped: number;
}

/**
 * Splits one protobufList message (varint(len) ‖ Envelope) into complete framed Envelopes of
 * at most `max` bytes each, at row boundaries.
 *
 * @example
 * ```ts
 * const { pieces, dropped } = splitEnvelope(framed, 65507); // UDP datagrams
 * ```
 */
export function splitEnvelope(framed: Uint8Array, max: number): Split {
  if (framed.length <= max) return { pieces: [framed], dropped: 0 };
  const env = unframe(framed);
  const pieces: Uint8Array[] = [];
  let dropped = 0;
  let group: [number, number][] = [];
  let groupBytes = 0;
  const emit = () => {
    if (!group.length) return;
    const prefix = encodeVarint(groupBytes);
    const out = new Uint8Array(prefix.length + groupBytes);
    out.set(prefix);
    let p = prefix.length;
    for (const [a, b] of group) {
      out.set(env.subarray(a, b), p);
      p += b - a;
    }
    pieces.push(out);
    group = [];
    groupBytes = 0;
  };
  for (let at = 0; at < env.length;) {
    const [, end] = rowBounds(env, at);
    const n = end - at;
    if (n + varintSize(n) > max) dropped++;
    else {
      if (groupBytes + n + varintSize(groupBytes + n) > max) emit();
      group.push([at, end]);
      groupBytes += n;
    }
    at = end;
  }
  emit();
  return { pieces, dropped };
}
