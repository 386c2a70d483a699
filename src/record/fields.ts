/**
 * The field table of `XtcpFlatRecord`: for every proto field, its number, type, and where its
 * value comes from (the daemon's stamp, the `inet_diag_msg` header, or an attribute payload at a
 * byte offset). The encoder, the JSON writer and the test oracle are all driven by this table,
 * so the kernel layouts are written down exactly once.
 *
 * @module
 */
import {
  INET_DIAG_BBRINFO,
  INET_DIAG_CGROUP_ID,
  INET_DIAG_CLASS_ID,
  INET_DIAG_CONG,
  INET_DIAG_DCTCPINFO,
  INET_DIAG_INFO,
  INET_DIAG_MEMINFO,
  INET_DIAG_SHUTDOWN,
  INET_DIAG_SKMEMINFO,
  INET_DIAG_SOCKOPT,
  INET_DIAG_TCLASS,
  INET_DIAG_TOS,
  INET_DIAG_VEGASINFO,
} from "../netlink/constants.ts";

/** Protobuf scalar type of a field. */
export type ProtoType = "uint32" | "uint64" | "int64" | "string" | "bytes" | "enum" | "bool";

/** How a kernel value is read from its payload. */
export const READ_META = 0;
export const READ_U8 = 1;
export const READ_U16 = 2;
export const READ_U32 = 3;
export const READ_U64 = 4;
/** u16 in network byte order (ports). */
export const READ_BE16 = 5;
/** Low nibble of a byte (tcpi_snd_wscale). */
export const READ_NIB_LO = 6;
/** High nibble of a byte (tcpi_rcv_wscale). */
export const READ_NIB_HI = 7;
/** Bit 0 of a byte (tcpi_delivery_rate_app_limited). */
export const READ_BIT0 = 8;
/** Bits 1–2 of a byte (tcpi_fastopen_client_fail). */
export const READ_BITS12 = 9;
/** 16 raw bytes (addresses). */
export const READ_ADDR16 = 10;
/** NUL-terminated string filling the payload (congestion control name). */
export const READ_CSTR = 11;
/** Congestion control name mapped to the CongestionAlgorithm enum. */
export const READ_CONG_ENUM = 12;

/** Source of a field: the daemon's stamp. */
export const SRC_META = -1;
/** Source of a field: the 72-byte inet_diag_msg header. */
export const SRC_MSG = 0;
/** Source of a field: the daemon, per socket (`RecordExtra` of extra.ts: owner, closed). */
export const SRC_EXTRA = -2;

/** One field of XtcpFlatRecord. */
export interface FieldSpec {
  /** snake_case proto name. */
  readonly name: string;
  /** lowerCamelCase JSON name (protojson, and the generated TypeScript property). */
  readonly json: string;
  /** Proto field number. */
  readonly number: number;
  /** Proto type. */
  readonly type: ProtoType;
  /** Explicit presence (`optional`): a present 0 is written; an absent value is not. */
  readonly optional: boolean;
  /** {@link SRC_META}, {@link SRC_MSG}, or an INET_DIAG_* attribute type. */
  readonly src: number;
  /** Byte offset of the value within its source. */
  readonly off: number;
  /** One of the READ_* kinds. */
  readonly read: number;
  /** Bytes the value needs within its source to be present. */
  readonly width: number;
}

const WIDTH: Record<number, number> = {
  [READ_META]: 0,
  [READ_U8]: 1,
  [READ_U16]: 2,
  [READ_U32]: 4,
  [READ_U64]: 8,
  [READ_BE16]: 2,
  [READ_NIB_LO]: 1,
  [READ_NIB_HI]: 1,
  [READ_BIT0]: 1,
  [READ_BITS12]: 1,
  [READ_ADDR16]: 16,
  [READ_CSTR]: 1,
  [READ_CONG_ENUM]: 1,
};

function camel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const specs: FieldSpec[] = [];
function f(
  name: string,
  number: number,
  type: ProtoType,
  src: number,
  off: number,
  read: number,
  optional = false,
): void {
  specs.push({
    name,
    json: camel(name),
    number,
    type,
    optional,
    src,
    off,
    read,
    width: WIDTH[read],
  });
}
function meta(name: string, number: number, type: ProtoType): void {
  f(name, number, type, SRC_META, 0, READ_META);
}

// Metadata (1–999), stamped by the daemon.
meta("schema_version", 1, "uint32");
meta("daemon_version", 2, "string");
meta("timestamp_ns", 10, "int64");
meta("hostname", 20, "string");
meta("location", 21, "string");
meta("netns", 30, "string");
meta("netns_inode", 31, "uint64");
meta("nsid", 32, "uint32");
meta("container_id", 40, "string");
meta("container_runtime", 41, "string");
meta("container_name", 42, "string");
meta("container_image", 43, "string");
meta("label", 50, "string");
meta("tag", 51, "string");
meta("record_counter", 60, "uint64");
meta("socket_fd", 61, "uint64");
meta("netlinker_id", 62, "uint64");
// Uplink NIC facts at base + 0…7 and its LLDP neighbour at base + 20…24 (uplink 1: 100, 2: 200).
const NIC_FIELDS = [
  "ifname",
  "nic_driver",
  "nic_model",
  "nic_pci_vendor",
  "nic_pci_device",
  "nic_bus_info",
  "nic_speed_mbps",
  "nic_fw_version",
];
const NIC_NUMBERS: ReadonlySet<string> = new Set([
  "nic_pci_vendor",
  "nic_pci_device",
  "nic_speed_mbps",
]);
const LLDP_FIELDS = ["chassis_name", "chassis_id", "mgmt_ip", "port_id", "port_descr"];
for (const [n, base] of [[1, 100], [2, 200]] as const) {
  NIC_FIELDS.forEach((f, i) =>
    meta(`uplink${n}_${f}`, base + i, NIC_NUMBERS.has(f) ? "uint32" : "string")
  );
  LLDP_FIELDS.forEach((f, i) => meta(`uplink${n}_lldp_${f}`, base + 20 + i, "string"));
}

// struct inet_diag_msg (72 bytes).
f("inet_diag_msg_family", 1001, "uint32", SRC_MSG, 0, READ_U8);
f("inet_diag_msg_state", 1002, "uint32", SRC_MSG, 1, READ_U8);
f("inet_diag_msg_timer", 1003, "uint32", SRC_MSG, 2, READ_U8);
f("inet_diag_msg_retrans", 1004, "uint32", SRC_MSG, 3, READ_U8);
f("inet_diag_msg_socket_source_port", 1005, "uint32", SRC_MSG, 4, READ_BE16);
f("inet_diag_msg_socket_destination_port", 1006, "uint32", SRC_MSG, 6, READ_BE16);
f("inet_diag_msg_socket_source", 1007, "bytes", SRC_MSG, 8, READ_ADDR16);
f("inet_diag_msg_socket_destination", 1008, "bytes", SRC_MSG, 24, READ_ADDR16);
f("inet_diag_msg_socket_interface", 1009, "uint32", SRC_MSG, 40, READ_U32);
f("inet_diag_msg_socket_cookie", 1010, "uint64", SRC_MSG, 44, READ_U64);
meta("inet_diag_msg_socket_dest_asn", 1011, "uint64");
meta("inet_diag_msg_socket_next_hop_asn", 1012, "uint64");
f("inet_diag_msg_expires", 1013, "uint32", SRC_MSG, 52, READ_U32);
f("inet_diag_msg_rqueue", 1014, "uint32", SRC_MSG, 56, READ_U32);
f("inet_diag_msg_wqueue", 1015, "uint32", SRC_MSG, 60, READ_U32);
f("inet_diag_msg_uid", 1016, "uint32", SRC_MSG, 64, READ_U32);
f("inet_diag_msg_inode", 1017, "uint32", SRC_MSG, 68, READ_U32);

// INET_DIAG_MEMINFO: struct inet_diag_meminfo.
["rmem", "wmem", "fmem", "tmem"].forEach((n, i) =>
  f("mem_info_" + n, 1101 + i, "uint32", INET_DIAG_MEMINFO, i * 4, READ_U32)
);

// INET_DIAG_INFO: struct tcp_info. Offsets are fixed; the struct only ever grows at the end.
const I = INET_DIAG_INFO;
f("tcp_info_state", 1201, "uint32", I, 0, READ_U8);
f("tcp_info_ca_state", 1202, "uint32", I, 1, READ_U8);
f("tcp_info_retransmits", 1203, "uint32", I, 2, READ_U8);
f("tcp_info_probes", 1204, "uint32", I, 3, READ_U8);
f("tcp_info_backoff", 1205, "uint32", I, 4, READ_U8);
f("tcp_info_options", 1206, "uint32", I, 5, READ_U8);
f("tcp_info_send_scale", 1207, "uint32", I, 6, READ_NIB_LO);
f("tcp_info_rcv_scale", 1208, "uint32", I, 6, READ_NIB_HI);
f("tcp_info_delivery_rate_app_limited", 1209, "uint32", I, 7, READ_BIT0);
f("tcp_info_fast_open_client_failed", 1210, "uint32", I, 7, READ_BITS12);
const tcpInfo: [string, number, number][] = [
  // [name, offset, READ_*] from 1215 on, in field-number order.
  ["rto", 8, READ_U32],
  ["ato", 12, READ_U32],
  ["snd_mss", 16, READ_U32],
  ["rcv_mss", 20, READ_U32],
  ["unacked", 24, READ_U32],
  ["sacked", 28, READ_U32],
  ["lost", 32, READ_U32],
  ["retrans", 36, READ_U32],
  ["fackets", 40, READ_U32],
  ["last_data_sent", 44, READ_U32],
  ["last_ack_sent", 48, READ_U32],
  ["last_data_recv", 52, READ_U32],
  ["last_ack_recv", 56, READ_U32],
  ["pmtu", 60, READ_U32],
  ["rcv_ssthresh", 64, READ_U32],
  ["rtt", 68, READ_U32],
  ["rtt_var", 72, READ_U32],
  ["snd_ssthresh", 76, READ_U32],
  ["snd_cwnd", 80, READ_U32],
  ["adv_mss", 84, READ_U32],
  ["reordering", 88, READ_U32],
  ["rcv_rtt", 92, READ_U32],
  ["rcv_space", 96, READ_U32],
  ["total_retrans", 100, READ_U32],
  ["pacing_rate", 104, READ_U64],
  ["max_pacing_rate", 112, READ_U64],
  ["bytes_acked", 120, READ_U64],
  ["bytes_received", 128, READ_U64],
  ["segs_out", 136, READ_U32],
  ["segs_in", 140, READ_U32],
  ["not_sent_bytes", 144, READ_U32],
  ["min_rtt", 148, READ_U32],
  ["data_segs_in", 152, READ_U32],
  ["data_segs_out", 156, READ_U32],
  ["delivery_rate", 160, READ_U64],
  ["busy_time", 168, READ_U64],
  ["rwnd_limited", 176, READ_U64],
  ["sndbuf_limited", 184, READ_U64],
  // 4.19+
  ["delivered", 192, READ_U32],
  ["delivered_ce", 196, READ_U32],
  ["bytes_sent", 200, READ_U64],
  ["bytes_retrans", 208, READ_U64],
  ["dsack_dups", 216, READ_U32],
  ["reord_seen", 220, READ_U32],
  // 5.4+
  ["rcv_ooopack", 224, READ_U32],
  ["snd_wnd", 228, READ_U32],
  // 6.5+
  ["rcv_wnd", 232, READ_U32],
  ["rehash", 236, READ_U32],
  // 6.10+
  ["total_rto", 240, READ_U16],
  ["total_rto_recoveries", 242, READ_U16],
  ["total_rto_time", 244, READ_U32],
];
tcpInfo.forEach(([n, off, read], i) => {
  const number = 1215 + i;
  f("tcp_info_" + n, number, read === READ_U64 ? "uint64" : "uint32", I, off, read, number >= 1253);
});

f("congestion_algorithm_string", 1300, "string", INET_DIAG_CONG, 0, READ_CSTR);
f("congestion_algorithm_enum", 1301, "enum", INET_DIAG_CONG, 0, READ_CONG_ENUM);
f("type_of_service", 1401, "uint32", INET_DIAG_TOS, 0, READ_U8);
f("traffic_class", 1402, "uint32", INET_DIAG_TCLASS, 0, READ_U8);
[
  "rmem_alloc",
  "rcv_buf",
  "wmem_alloc",
  "snd_buf",
  "fwd_alloc",
  "wmem_queued",
  "optmem",
  "backlog",
  "drops",
].forEach((n, i) =>
  f("sk_mem_info_" + n, 1501 + i, "uint32", INET_DIAG_SKMEMINFO, i * 4, READ_U32)
);
f("shutdown_state", 1600, "uint32", INET_DIAG_SHUTDOWN, 0, READ_U8);
["enabled", "rtt_cnt", "rtt", "min_rtt"].forEach((n, i) =>
  f("vegas_info_" + n, 1701 + i, "uint32", INET_DIAG_VEGASINFO, i * 4, READ_U32)
);
f("dctcp_info_enabled", 1801, "uint32", INET_DIAG_DCTCPINFO, 0, READ_U16);
f("dctcp_info_ce_state", 1802, "uint32", INET_DIAG_DCTCPINFO, 2, READ_U16);
f("dctcp_info_alpha", 1803, "uint32", INET_DIAG_DCTCPINFO, 4, READ_U32);
f("dctcp_info_ab_ecn", 1804, "uint32", INET_DIAG_DCTCPINFO, 8, READ_U32);
f("dctcp_info_ab_tot", 1805, "uint32", INET_DIAG_DCTCPINFO, 12, READ_U32);
["bw_lo", "bw_hi", "min_rtt", "pacing_gain", "cwnd_gain"].forEach((n, i) =>
  f("bbr_info_" + n, 1901 + i, "uint32", INET_DIAG_BBRINFO, i * 4, READ_U32)
);
f("class_id", 2001, "uint32", INET_DIAG_CLASS_ID, 0, READ_U32);
f("sock_opt", 2002, "uint32", INET_DIAG_SOCKOPT, 0, READ_U16);
f("c_group", 2103, "uint64", INET_DIAG_CGROUP_ID, 0, READ_U64);

// Per socket, from the daemon (2200+).
f("socket_owner_pid", 2200, "uint32", SRC_EXTRA, 0, READ_META);
f("socket_owner_comm", 2201, "string", SRC_EXTRA, 0, READ_META);
f("closed", 2210, "bool", SRC_EXTRA, 0, READ_META);

/** Every field of XtcpFlatRecord, in field-number order. */
export const FIELDS: readonly FieldSpec[] = specs.sort((a, b) => a.number - b.number);

/** Field by snake_case name. */
export const FIELD_BY_NAME: ReadonlyMap<string, FieldSpec> = new Map(
  FIELDS.map((s) => [s.name, s]),
);

/** Field by column name as people write it: the snake_case proto name or the lowerCamelCase one. */
export const FIELD_BY_COLUMN: ReadonlyMap<string, FieldSpec> = new Map(
  FIELDS.flatMap((s) => [[s.name, s], [s.json, s]]),
);

/** Values of XtcpFlatRecord.CongestionAlgorithm. */
export const CONGESTION_ALGORITHM_NAMES: readonly string[] = [
  "CONGESTION_ALGORITHM_UNSPECIFIED",
  "CONGESTION_ALGORITHM_CUBIC",
  "CONGESTION_ALGORITHM_DCTCP",
  "CONGESTION_ALGORITHM_VEGAS",
  "CONGESTION_ALGORITHM_PRAGUE",
  "CONGESTION_ALGORITHM_BBR1",
  "CONGESTION_ALGORITHM_BBR2",
  "CONGESTION_ALGORITHM_BBR3",
];

/**
 * Maps the kernel's congestion control name (bytes `[off, end)`, NUL-terminated) to the
 * CongestionAlgorithm enum without allocating: cubic 1, dctcp 2, vegas 3, prague 4, bbr 5,
 * bbr2 6, bbr3 7, anything else 0.
 */
export function congestionEnum(u8: Uint8Array, off: number, end: number): number {
  const n = end - off;
  const c0 = n > 0 ? u8[off] : 0;
  const c1 = n > 1 ? u8[off + 1] : 0;
  const c2 = n > 2 ? u8[off + 2] : 0;
  const c3 = n > 3 ? u8[off + 3] : 0;
  if (c0 === 0x62 && c1 === 0x62 && c2 === 0x72) { // "bbr"
    if (c3 === 0x33) return 7;
    if (c3 === 0x32) return 6;
    return 5;
  }
  if (c0 === 0x63 && c1 === 0x75 && c2 === 0x62) return 1; // "cub"
  if (c0 === 0x64 && c1 === 0x63 && c2 === 0x74) return 2; // "dct"
  if (c0 === 0x76 && c1 === 0x65 && c2 === 0x67) return 3; // "veg"
  if (c0 === 0x70 && c1 === 0x72 && c2 === 0x61) return 4; // "pra"
  return 0;
}

/** Length of the NUL-terminated string in `[off, end)` (the whole range if no NUL). */
export function cstrLen(u8: Uint8Array, off: number, end: number): number {
  let i = off;
  while (i < end && u8[i] !== 0) i++;
  return i - off;
}
