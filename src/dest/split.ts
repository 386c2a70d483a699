/**
 * Splitting one flush into pieces that fit a datagram: protobufList envelopes at row boundaries
 * (each piece is again one complete varint-prefixed Envelope), line formats at newlines.
 *
 * @module
 */
import { type Split, splitEnvelope } from "../record/envelope.ts";

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
  // What follows the last newline: a record without one, or nothing.
  if (bytes.length - start > max) {
    if (lineStart > start) pieces.push(bytes.subarray(start, lineStart));
    if (bytes.length - lineStart > max) dropped++;
    else pieces.push(bytes.subarray(lineStart));
  } else if (start < bytes.length) pieces.push(bytes.subarray(start));
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
