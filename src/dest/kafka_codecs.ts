/**
 * The Kafka codecs kafkajs does not carry (it has GZIP built in): snappy (snappyjs), lz4 (lz4js,
 * the LZ4 frame format Kafka uses) and zstd (zstd compiled to WebAssembly), all pure JavaScript
 * or WebAssembly, so nothing native is built. Registered once, when a kafka: destination with
 * one of them opens.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { CompressionCodecs, CompressionTypes } from "kafkajs";
import snappy from "snappyjs";
import lz4 from "lz4js";
import * as zstd from "@bokuweb/zstd-wasm";

/** What kafkajs hands a codec to compress: the encoded record batch. */
interface Encoder {
  buffer: Uint8Array;
}

/** A kafkajs codec from two byte functions. */
function codec(compress: (b: Uint8Array) => Uint8Array, decompress: (b: Uint8Array) => Uint8Array) {
  return () => ({
    compress: (encoder: Encoder) => Promise.resolve(Buffer.from(compress(encoder.buffer))),
    decompress: (buffer: Uint8Array) => Promise.resolve(Buffer.from(decompress(buffer))),
  });
}

let zstdReady: Promise<void> | undefined;
/** Codecs registered here (kafkajs's own entries for them only throw "not implemented"). */
const registered = new Set<CompressionTypes>();

/**
 * Registers the codec of `type` with kafkajs (idempotent); zstd first loads its WebAssembly.
 *
 * @example
 * ```ts
 * await registerCodec(CompressionTypes.ZSTD);
 * ```
 */
export async function registerCodec(type: CompressionTypes): Promise<void> {
  const codecs = CompressionCodecs as Record<number, unknown>;
  if (registered.has(type)) return;
  registered.add(type);
  switch (type) {
    case CompressionTypes.Snappy:
      codecs[type] = codec((b) => snappy.compress(b), (b) => snappy.uncompress(b));
      return;
    case CompressionTypes.LZ4:
      codecs[type] = codec((b) => lz4.compress(b), (b) => Uint8Array.from(lz4.decompress(b)));
      return;
    case CompressionTypes.ZSTD:
      await (zstdReady ??= zstd.init());
      codecs[type] = codec((b) => zstd.compress(b, 3), (b) => zstd.decompress(b));
      return;
  }
}
