/**
 * Netlink and inet_diag constants (linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h).
 *
 * @module
 */

/** Size of struct nlmsghdr. */
export const NLMSG_HDRLEN = 16;
/** Size of struct inet_diag_msg. */
export const INET_DIAG_MSG_LEN = 72;
/** Size of struct inet_diag_req_v2. */
export const INET_DIAG_REQ_V2_LEN = 56;
/** Size of a dump request: nlmsghdr + inet_diag_req_v2. */
export const DUMP_REQUEST_LEN = NLMSG_HDRLEN + INET_DIAG_REQ_V2_LEN;
/** Size of struct inet_diag_req (the compat request: family, lengths, ext, sockid, states, dbs). */
export const INET_DIAG_REQ_LEN = 60;
/** Size of a compat dump request: nlmsghdr + inet_diag_req. */
export const COMPAT_REQUEST_LEN = NLMSG_HDRLEN + INET_DIAG_REQ_LEN;
/** Size of struct rtattr. */
export const RTA_HDRLEN = 4;
/** Attribute type of a request's filter bytecode (after the request struct, v2 or compat). */
export const INET_DIAG_REQ_BYTECODE = 1;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
/** nlmsg_type of inet_diag requests and replies. */
export const SOCK_DIAG_BY_FAMILY = 20;
/**
 * nlmsg_type of the old TCP request (`struct inet_diag_req`) and of its replies. With family
 * AF_UNSPEC the kernel answers it with IPv4 and IPv6 sockets from one walk of the TCP tables.
 */
export const TCPDIAG_GETSOCK = 18;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
/** Set by the kernel on a message of a dump whose state changed while it was read. */
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;

/** Every TCP state, as `ss -a` asks (bytes FF 3F 00 00 on the wire). */
export const ALL_TCP_STATES = 0x3fff;

/** Attribute types of an inet_diag reply (enum INET_DIAG_*). */
export const INET_DIAG_MEMINFO = 1;
export const INET_DIAG_INFO = 2;
export const INET_DIAG_VEGASINFO = 3;
export const INET_DIAG_CONG = 4;
export const INET_DIAG_TOS = 5;
export const INET_DIAG_TCLASS = 6;
export const INET_DIAG_SKMEMINFO = 7;
export const INET_DIAG_SHUTDOWN = 8;
export const INET_DIAG_DCTCPINFO = 9;
export const INET_DIAG_BBRINFO = 16;
export const INET_DIAG_CLASS_ID = 17;
export const INET_DIAG_CGROUP_ID = 21;
export const INET_DIAG_SOCKOPT = 22;
/** Attribute types are below this bound; larger ones are skipped. */
export const MAX_ATTR_TYPE = 32;

/** TCP state names as the kernel numbers them (include/net/tcp_states.h). */
export const TCP_STATE_NAMES: readonly string[] = [
  "UNKNOWN",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT1",
  "FIN_WAIT2",
  "TIME_WAIT",
  "CLOSE",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "CLOSING",
  "NEW_SYN_RECV",
  "BOUND_INACTIVE",
];
