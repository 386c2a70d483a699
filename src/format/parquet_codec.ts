/**
 * The Parquet page codecs (`-s3ParquetCodec`), apart from the writer so that the configuration
 * names them without loading any codec.
 *
 * @module
 */

/** Codecs of `-s3ParquetCodec` (zstd first: the default). */
export const PARQUET_CODECS = ["zstd", "snappy", "gzip", "none"] as const;

/** A {@link PARQUET_CODECS} value. */
export type ParquetCodec = (typeof PARQUET_CODECS)[number];
