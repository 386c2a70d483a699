/**
 * `xtcp2_minimal`, the minimal flavor: the same daemon and `decode` as `xtcp2`, with every
 * destination but the brokers (kafka, nats, nsq, valkey/redis) and s3parquet, as the original's
 * minimal build: neither kafkajs (with its codecs) nor our broker protocols, Parquet writer and S3
 * client are in its module graph, so `deno compile` leaves them out of the binary. Asking for one of them is refused at startup, naming the full build.
 *
 * @module
 */
import { main } from "./xtcp2_cli.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
