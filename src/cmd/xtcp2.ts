/**
 * `xtcp2`: collect the kernel's per-socket TCP state through netlink inet_diag.
 *
 * ```
 * xtcp2 [flags]                      live collection of the current namespace
 * xtcp2 decode FILE.pcap [flags]     decode an nlmon capture
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodeCapture } from "../netlink/capture.ts";
import { DeserializerSpecError, idiagExt, parseDeserializers } from "../netlink/deserializers.ts";
import { DecodeError } from "../netlink/errors.ts";
import { EnvelopeWriter } from "../record/encoder.ts";
import { Stamp } from "../record/stamp.ts";
import { recordJson } from "../record/values.ts";
import { EnvelopeSink, JsonLinesSink } from "../format/sinks.ts";
import { collectOnce } from "../poll/collect.ts";
import { CaptureWriter } from "../daemon/capture_writer.ts";
import { parseDuration } from "../daemon/duration.ts";
import { intFlag, normalizeGoFlags, UsageError } from "./args.ts";
import { VERSION } from "../version.ts";
import { netnsInode } from "../../ffi/libc.ts";

const USAGE = `xtcp2 ${VERSION}: stream the kernel's per-socket TCP state (netlink inet_diag)

Usage:
  xtcp2 [flags]                   collect the current network namespace
  xtcp2 decode FILE.pcap [flags]  decode an nlmon capture (pcap, linktype 253)

Collection flags (Go-style -flag and --flag both work):
  --maxLoops N          stop after N polls (0 = forever)                    [0]
  --frequency D         time between polls (Go duration)                    [10s]
  --dest D              stdout | null | file:PATH                           [stdout]
  --marshal M           protobufList | jsonl                                [protobufList]
  --deserializers S     default | all | "" | comma list of: meminfo, info, vegas, cong,
                        tos, tc, skmem, shut, dctcp, bbr, classid, cgroup, sockopt  [default]
  --packetSize N        receive buffer base in bytes, 0 = 4096              [0]
  --packetSizeMply N    buffer = packetSize × N (at least 32 KiB)           [8]
  --nlmsgSeq N          first netlink sequence number                       [666]
  --nltimeout MS        netlink receive timeout in ms, 0 = none             [1000]
  --writeFiles N        capture the first N netlink datagrams as a pcap     [0]
  --capturePath P       prefix of the capture file                          [./]
  --hostname H, --label L, --tag T, --location L   stamped on every record
  -v                    print the version and exit

Decode flags:
  --format F            jsonl | protobuflist                                [jsonl]
  --deserializers S     as above                                            [all]
`;

const encoder = new TextEncoder();

function writeAllSync(f: { writeSync(b: Uint8Array): number }, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += f.writeSync(b.subarray(off));
}

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
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("decode takes exactly one FILE.pcap");
  const file = positionals[0];
  const format = values.format.toLowerCase();
  if (format !== "jsonl" && format !== "protobuflist") {
    throw new UsageError(
      `Invalid value for --format: "${values.format}": use jsonl or protobuflist`,
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
  const out = new EnvelopeWriter();
  const lines: string[] = [];
  try {
    decodeCapture(bytes, file, mask, (v) => {
      if (format === "jsonl") lines.push(recordJson(v, stamp));
      else out.add(v, stamp);
    });
  } catch (err) {
    if (err instanceof DecodeError) {
      console.error(`xtcp2: decode: ${err.message}`);
      return 1;
    }
    throw err;
  }
  writeAllSync(
    Deno.stdout,
    format === "jsonl" ? encoder.encode(lines.length ? lines.join("\n") + "\n" : "") : out.framed(),
  );
  return 0;
}

async function collectCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      maxLoops: { type: "string" },
      frequency: { type: "string", default: "10s" },
      dest: { type: "string", default: "stdout" },
      marshal: { type: "string", default: "protobufList" },
      deserializers: { type: "string", default: "default" },
      packetSize: { type: "string" },
      packetSizeMply: { type: "string" },
      nlmsgSeq: { type: "string" },
      nltimeout: { type: "string" },
      writeFiles: { type: "string" },
      capturePath: { type: "string", default: "./" },
      hostname: { type: "string" },
      label: { type: "string", default: "" },
      tag: { type: "string", default: "" },
      location: { type: "string", default: "" },
      v: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.v) {
    console.log(`xtcp commit:${VERSION}\tdate(UTC):unknown\tversion:${VERSION}`);
    return 0;
  }
  const maxLoops = intFlag("maxLoops", values.maxLoops, 0, 0, 100000);
  let frequencyMs: number;
  try {
    frequencyMs = parseDuration(values.frequency);
  } catch (err) {
    throw new UsageError(`Invalid value for --frequency: ${(err as Error).message}`);
  }
  const marshal = values.marshal;
  if (marshal !== "protobufList" && marshal !== "jsonl") {
    throw new UsageError(`Invalid value for --marshal: "${marshal}": use protobufList or jsonl`);
  }
  const packetSize = intFlag("packetSize", values.packetSize, 0, 0, 1_000_000) || 4096;
  const mply = intFlag("packetSizeMply", values.packetSizeMply, 8, 0, 100) || 8;
  const bufferSize = Math.max(packetSize * mply, 32 * 1024);
  const seq = intFlag("nlmsgSeq", values.nlmsgSeq, 666, 0, 10000);
  const rcvTimeoutMs = intFlag("nltimeout", values.nltimeout, 1000, 0, 100000);
  const writeFiles = intFlag("writeFiles", values.writeFiles, 0, 0, 1000);
  const mask = parseDeserializers(values.deserializers);
  const dest = openDest(values.dest);
  using capture = writeFiles > 0 ? new CaptureWriter(values.capturePath, writeFiles) : undefined;
  const nsInode = netnsInode("/proc/self/ns/net");
  const base = new Stamp({
    daemon_version: VERSION,
    hostname: values.hostname ?? Deno.hostname(),
    location: values.location,
    label: values.label,
    tag: values.tag,
    netns: "default",
    netns_inode: nsInode,
  });
  const envSink = new EnvelopeSink(base);
  const jsonSink = new JsonLinesSink(base);
  let nextSeq = seq;
  try {
    for (let loop = 0; maxLoops === 0 || loop < maxLoops; loop++) {
      const stamp = base.with({ timestamp_ns: nowNs() });
      const sink = marshal === "jsonl" ? jsonSink : envSink;
      envSink.stamp = stamp;
      jsonSink.stamp = stamp;
      const opts = {
        mask,
        ext: idiagExt(mask),
        bufferSize,
        seq: nextSeq,
        rcvTimeoutMs,
        onDatagram: capture ? (b: Uint8Array, out: boolean) => capture.write(b, out) : undefined,
      };
      collectOnce(opts, sink);
      nextSeq += 2;
      if (marshal === "jsonl") dest(jsonSink.take());
      else if (envSink.writer.rows > 0) {
        dest(envSink.writer.framed());
        envSink.writer.reset();
      }
      if (maxLoops === 0 || loop + 1 < maxLoops) {
        await new Promise((r) => setTimeout(r, frequencyMs));
      }
    }
  } finally {
    dest.close?.();
  }
  return 0;
}

/** Wall-clock time in ns (microsecond resolution). */
function nowNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

type Dest = ((b: Uint8Array) => void) & { close?: () => void };

function openDest(spec: string): Dest {
  if (spec === "stdout") return (b) => writeAllSync(Deno.stdout, b);
  if (spec === "null" || spec === "null:") return () => {};
  if (spec.startsWith("file:")) {
    const path = spec.slice(5);
    if (!path) throw new UsageError(`Invalid value for --dest: "${spec}": file: needs a path`);
    const f = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
    const d: Dest = (b) => writeAllSync(f, b);
    d.close = () => f.close();
    return d;
  }
  throw new UsageError(`Invalid value for --dest: "${spec}": use stdout, null or file:PATH`);
}

/** Runs the command line `args`; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const argv = normalizeGoFlags(args);
  try {
    if (argv[0] === "decode") return decodeCommand(argv.slice(1));
    return await collectCommand(argv);
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

if (import.meta.main) Deno.exit(await main(Deno.args));
