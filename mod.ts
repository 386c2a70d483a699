/**
 * xtcp2 as a library: collect a namespace's TCP sockets once, decode netlink captures, encode
 * `XtcpFlatRecord`s.
 *
 * @example
 * ```ts
 * import { collectOnce, JsonLinesSink, parseDeserializers, idiagExt, Stamp } from "./mod.ts";
 * const mask = parseDeserializers("default");
 * const sink = new JsonLinesSink(new Stamp({ netns: "default" }));
 * collectOnce({ mask, ext: idiagExt(mask) }, sink);
 * console.log(sink.lines.length, "sockets");
 * ```
 *
 * @module
 */
export { collectOnce, type CollectOptions, openDiagSocket } from "./src/poll/collect.ts";
export { type CaptureSummary, decodeCapture } from "./src/netlink/capture.ts";
export {
  Dumper,
  type DumperOptions,
  type DumpSink,
  type NetlinkTransport,
} from "./src/netlink/dump.ts";
export { DECODER_NAMES, idiagExt, parseDeserializers } from "./src/netlink/deserializers.ts";
export { DecodeError, NetlinkError, TruncatedDatagramError } from "./src/netlink/errors.ts";
export { parseDatagram, ParseStats } from "./src/netlink/parse.ts";
export { pcapFileHeader, pcapPackets, pcapRecord } from "./src/netlink/pcap.ts";
export { SocketView } from "./src/netlink/socket_view.ts";
export { EnvelopeWriter, RecordEncoder } from "./src/record/encoder.ts";
export { RecordExtra } from "./src/record/extra.ts";
export { FIELDS, type FieldSpec } from "./src/record/fields.ts";
export { formatIp } from "./src/record/ip.ts";
export { OutBuf } from "./src/record/out_buf.ts";
export { Stamp } from "./src/record/stamp.ts";
export { recordJson, recordMessage } from "./src/record/values.ts";
export { EnvelopeSink, JsonLinesSink } from "./src/format/sinks.ts";
export * from "./src/gen/xtcp_flat_record/v1/xtcp_flat_record_pb.ts";
