/**
 * `xtcp2_kafka_client`: consumes a Kafka topic the daemon produces to (`-dest kafka:`,
 * `-marshal protobufList`), unframes each record's protobufList Envelope and prints its rows as
 * JSON lines (proto field names), or only counts them.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { parseArgs } from "node:util";
import { fromBinary, toJsonString } from "@bufbuild/protobuf";
import { Kafka, logLevel } from "kafkajs";
import {
  EnvelopeSchema,
  XtcpFlatRecordSchema,
} from "../gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
import { quietKafkajsTimers } from "../dest/kafka.ts";
import { envelopeRows, unframe } from "../record/envelope.ts";
import { parseDuration } from "../util/duration.ts";
import { errorMessage } from "../util/errors.ts";
import { writeAllSync } from "../util/write_all.ts";
import { normalizeGoFlags, UsageError } from "./args.ts";
import { intFlag, runMain } from "./client_common.ts";

const USAGE = `Usage: xtcp2_kafka_client [flags]

Reads the daemon's records from Kafka (-dest kafka:… -marshal protobufList): each Kafka record is
one varint-framed Envelope; its rows are printed as JSON lines (proto field names, 64-bit values as
decimal strings), or counted.

  --brokers LIST     bootstrap brokers, HOST:PORT[,HOST:PORT…]          [localhost:19092]
  --topic T          topic                                              [xtcp]
  --group G          consumer group                                     [xtcp2_kafka_client]
  --fromBeginning    read the topic from its start (else only what comes from now on)
  --format F         json (a line per row) or count (one line at the end)  [json]
  --max N            stop after N rows (0 = no limit)                   [0]
  --idle D           stop after D without a record (0 = never)          [0]
  -d N               0 quiet, 1 errors and the final count on stderr (default), >10 one line per record
`;

/** What was read. */
interface Tally {
  records: number;
  rows: number;
  bad: number;
}

/** Runs the tool; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args: normalizeGoFlags(args),
    options: {
      brokers: { type: "string", default: "localhost:19092" },
      topic: { type: "string", default: "xtcp" },
      group: { type: "string", default: "xtcp2_kafka_client" },
      fromBeginning: { type: "boolean", default: false },
      format: { type: "string", default: "json" },
      max: { type: "string", default: "0" },
      idle: { type: "string", default: "0s" },
      d: { type: "string", default: "1" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.format !== "json" && values.format !== "count") {
    throw new UsageError(`Invalid value for --format: "${values.format}": use json or count`);
  }
  const max = intFlag("max", values.max, 0);
  const level = intFlag("d", values.d, 0);
  let idleMs: number;
  try {
    idleMs = parseDuration(values.idle);
  } catch (err) {
    throw new UsageError(`Invalid value for --idle: "${values.idle}": ${errorMessage(err)}`);
  }
  const json = values.format === "json";
  const enc = new TextEncoder();
  const tally: Tally = { records: 0, rows: 0, bad: 0 };
  const done = Promise.withResolvers<string>();

  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const armIdle = () => {
    if (!idleMs) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => done.resolve(`idle for ${values.idle}`), idleMs);
  };
  const onRecord = (value: Buffer | null, offset: string, partition: number) => {
    armIdle();
    tally.records++;
    if (!value) return;
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    let rows = 0;
    try {
      const env = unframe(bytes);
      if (json) {
        let out = "";
        for (const r of fromBinary(EnvelopeSchema, env).row) {
          if (max && tally.rows + rows >= max) break;
          out += toJsonString(XtcpFlatRecordSchema, r, { useProtoFieldName: true }) + "\n";
          rows++;
        }
        writeAllSync(Deno.stdout, enc.encode(out));
      } else {
        for (const _ of envelopeRows(env)) rows++;
        if (max) rows = Math.min(rows, max - tally.rows);
      }
    } catch (err) {
      tally.bad++;
      if (level >= 1) {
        console.error(
          `xtcp2_kafka_client: partition ${partition} offset ${offset}: not a protobufList Envelope: ${
            errorMessage(err)
          }`,
        );
      }
      return;
    }
    tally.rows += rows;
    if (level > 10) {
      console.error(`xtcp2_kafka_client: partition ${partition} offset ${offset}: ${rows} rows`);
    }
    if (max && tally.rows >= max) done.resolve(`${max} rows`);
  };

  quietKafkajsTimers();
  const kafka = new Kafka({
    clientId: "xtcp2_kafka_client",
    brokers: values.brokers.split(",").map((b) => b.trim()).filter((b) => b),
    connectionTimeout: 3000,
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: values.group });
  const signals = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => done.resolve(sig);
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: values.topic, fromBeginning: values.fromBeginning });
    consumer.on(consumer.events.CRASH, (e) => {
      done.reject(new Error(`consumer stopped: ${errorMessage(e.payload.error)}`));
    });
    await consumer.run({
      eachMessage: ({ message, partition }) => {
        onRecord(message.value, message.offset, partition);
        return Promise.resolve();
      },
    });
    armIdle();
    const why = await done.promise;
    if (level >= 1) {
      console.error(
        `xtcp2_kafka_client: ${why}: ${tally.records} records, ${tally.rows} rows${
          tally.bad ? `, ${tally.bad} not protobufList` : ""
        }`,
      );
    }
  } finally {
    clearTimeout(idleTimer);
    for (const [s, h] of signals) Deno.removeSignalListener(s, h);
    await consumer.disconnect().catch(() => {});
  }
  if (!json) console.log(`${tally.records} records ${tally.rows} rows`);
  return tally.bad ? 1 : 0;
}

if (import.meta.main) await runMain("xtcp2_kafka_client", main);
