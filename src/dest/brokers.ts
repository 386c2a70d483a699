/**
 * The broker and archive destinations (kafka: over kafkajs and its codecs; nats, nsq,
 * valkey/redis: their protocols written here; s3parquet: the Parquet writer and S3 client written
 * here), for registry.ts's `registerDestinations`. Each is loaded only when its destination is
 * opened, so a daemon writing elsewhere starts without them; an entrypoint that does not import
 * this module (`xtcp2_minimal`) has none of them in its module graph or its compiled binary.
 *
 * @module
 */
import type { DestOpener, RegisteredScheme } from "./registry.ts";

const valkey: DestOpener = async (scheme, address, opts) =>
  (await import("./valkey.ts")).ValkeyDest.open(scheme, address, opts);

/** Openers of the broker destinations, by scheme. */
export const BROKER_DESTINATIONS: Readonly<Record<RegisteredScheme, DestOpener>> = {
  kafka: async (_scheme, address, opts) =>
    (await import("./kafka.ts")).KafkaDest.open(address, opts),
  nats: async (_scheme, address, opts) => (await import("./nats.ts")).NatsDest.open(address, opts),
  nsq: async (_scheme, address, opts) => (await import("./nsq.ts")).NsqDest.open(address, opts),
  valkey,
  redis: valkey,
  "valkey-stream": valkey,
  "redis-stream": valkey,
  s3parquet: async (_scheme, address, opts) =>
    (await import("./s3parquet.ts")).S3ParquetDest.open(address, opts),
};
