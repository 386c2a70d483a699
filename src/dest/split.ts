/**
 * Splitting one flush into pieces that fit a datagram: protobufList envelopes at row boundaries
 * (each piece is again one complete varint-prefixed Envelope), line formats at newlines.
 *
 * @module
 */

function readVarint(b: Uint8Array, at: number): [number, number] {
  let v = 0;
  let mul = 1;
  let i = at;
  for (;;) {
    if (i >= b.length) throw new RangeError("Truncated varint");
    const x = b[i++];
    v += (x & 0x7f) * mul;
    if ((x & 0x80) === 0) return [v, i];
    mul *= 128;
  }
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Result of a split: the pieces, and what could not fit at all. */
export interface Split {
  pieces: Uint8Array[];
  /** Rows or lines larger than the limit on their own (dropped, to be counted). */
  dropped: number;
}

/** Splits a protobufList flush (varint(len) ‖ Envelope{row=10}) into framed envelopes ≤ max. */
export function splitEnvelope(framed: Uint8Array, max: number): Split {
  if (framed.length <= max) return { pieces: [framed], dropped: 0 };
  const [len, start] = readVarint(framed, 0);
  const end = start + len;
  const rows: [number, number][] = [];
  for (let at = start; at < end;) {
    const [, afterTag] = readVarint(framed, at); // tag 0x52 (field 10, wire type 2)
    const [rowLen, body] = readVarint(framed, afterTag);
    rows.push([at, body + rowLen]);
    at = body + rowLen;
  }
  const pieces: Uint8Array[] = [];
  let dropped = 0;
  let group: [number, number][] = [];
  let groupBytes = 0;
  const emit = () => {
    if (!group.length) return;
    const prefix = varint(groupBytes);
    const out = new Uint8Array(prefix.length + groupBytes);
    out.set(prefix);
    let p = prefix.length;
    for (const [a, b] of group) {
      out.set(framed.subarray(a, b), p);
      p += b - a;
    }
    pieces.push(out);
    group = [];
    groupBytes = 0;
  };
  for (const [a, b] of rows) {
    const n = b - a;
    if (n + varint(n).length > max) {
      dropped++;
      continue;
    }
    if (groupBytes + n + varint(groupBytes + n).length > max) emit();
    group.push([a, b]);
    groupBytes += n;
  }
  emit();
  return { pieces, dropped };
}

/** Splits newline-terminated records into pieces ≤ max bytes, at line ends. */
export function splitLines(bytes: Uint8Array, max: number): Split {
  if (bytes.length <= max) return { pieces: [bytes], dropped: 0 };
  const pieces: Uint8Array[] = [];
  let dropped = 0;
  let start = 0;
  let lineStart = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x0a) continue;
    const lineEnd = i + 1;
    if (lineEnd - lineStart > max) {
      if (lineStart > start) pieces.push(bytes.subarray(start, lineStart));
      dropped++;
      start = lineEnd;
    } else if (lineEnd - start > max) {
      pieces.push(bytes.subarray(start, lineStart));
      start = lineStart;
    }
    lineStart = lineEnd;
  }
  if (start < bytes.length) pieces.push(bytes.subarray(start));
  return { pieces, dropped };
}

/**
 * A flush cut to messages of at most `max` bytes: protobufList at rows, line formats at lines;
 * another format too large is dropped whole (counted as one).
 */
export function splitFlush(
  bytes: Uint8Array,
  max: number,
  marshal: string,
  framing: "message" | "lines",
): Split {
  if (bytes.length <= max) return { pieces: [bytes], dropped: 0 };
  if (marshal === "protobufList") return splitEnvelope(bytes, max);
  if (framing === "lines") return splitLines(bytes, max);
  return { pieces: [], dropped: 1 };
}
