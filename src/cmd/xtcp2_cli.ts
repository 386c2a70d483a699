/**
 * The command line of `xtcp2` and `xtcp2_minimal`: the daemon, and `xtcp2 decode FILE.pcap` for
 * captures. The entrypoints differ only in the destinations they register (xtcp2.ts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodeCapture } from "../netlink/capture.ts";
import { DeserializerSpecError, parseDeserializers } from "../netlink/deserializers.ts";
import { DecodeError } from "../netlink/errors.ts";
import { EnvelopeWriter } from "../record/encoder.ts";
import { Stamp } from "../record/stamp.ts";
import { marshaller, MARSHALLER_NAMES } from "../format/marshal.ts";
import { runDaemon } from "../daemon/main.ts";
import { writeAllSync } from "../util/write_all.ts";
import { normalizeGoFlags, UsageError } from "./args.ts";

const DECODE_USAGE =
  `Usage: xtcp2 decode FILE.pcap [--format jsonl|protobuflist|protoJson|csv|tsv] [--deserializers all]

Decodes every sock_diag reply of an nlmon capture (pcap, link type 253) and prints the records:
jsonl = one protojson object per socket, proto field names (snake_case), 64-bit values as decimal
strings; protobuflist = one varint-prefixed Envelope (ClickHouse ProtobufList).`;

function decodeCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: {
      format: { type: "string", default: "jsonl" },
      deserializers: { type: "string", default: "all" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(DECODE_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("decode takes exactly one FILE.pcap");
  const file = positionals[0];
  const format = MARSHALLER_NAMES.find((n) => n.toLowerCase() === values.format.toLowerCase());
  if (!format) {
    throw new UsageError(
      `Invalid value for --format: "${values.format}": use ${MARSHALLER_NAMES.join(", ")}`,
    );
  }
  const mask = parseDeserializers(values.deserializers);
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(file);
  } catch (err) {
    console.error(`xtcp2: decode ${file}: ${(err as Error).message}`);
    return 1;
  }
  const stamp = new Stamp({});
  const env = new EnvelopeWriter();
  try {
    decodeCapture(bytes, file, mask, (v) => env.add(v, stamp));
  } catch (err) {
    if (err instanceof DecodeError) {
      console.error(`xtcp2: decode: ${err.message}`);
      return 1;
    }
    throw err;
  }
  if (env.rows > 0 || format === "protobufList") {
    writeAllSync(Deno.stdout, marshaller(format).marshal(env));
  }
  return 0;
}

/** Runs the command line `args`; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  try {
    if (args[0] === "decode") return decodeCommand(normalizeGoFlags(args.slice(1)));
    return await runDaemon(args, Deno.env.toObject());
  } catch (err) {
    if (err instanceof UsageError || err instanceof DeserializerSpecError) {
      console.error(`xtcp2: ${err.message}`);
      return 2;
    }
    if ((err as { code?: unknown }).code?.toString().startsWith("ERR_PARSE_ARGS")) {
      console.error(`xtcp2: ${(err as Error).message.replace(/\s*\n\s*/g, " ")} (see --help)`);
      return 2;
    }
    console.error(`xtcp2: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
