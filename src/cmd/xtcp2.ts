/**
 * `xtcp2`, the full flavor: every destination, the brokers (kafka over kafkajs; nats, nsq,
 * valkey/redis) and s3parquet included, each loaded when its destination opens. `xtcp2_minimal.ts` is the same daemon without
 * them.
 *
 * @module
 */
import { BROKER_DESTINATIONS } from "../dest/brokers.ts";
import { registerDestinations } from "../dest/registry.ts";
import { main } from "./xtcp2_cli.ts";

registerDestinations(BROKER_DESTINATIONS);

if (import.meta.main) Deno.exit(await main(Deno.args));
