/**
 * libc through `Deno.dlopen`: the only place that binds native symbols. Every call is
 * synchronous (never `nonblocking`): `setns` must act on the JS thread itself, and the dump path
 * is cheaper without the thread hop. errno is read immediately after each call, from a view of the
 * calling thread's errno made once (see {@link errno}). Calls that a signal can interrupt
 * (recvmsg, sendmsg, sendto) retry EINTR, bounded by {@link MAX_EINTR_RETRIES}.
 *
 * @module
 */
import { OsError } from "./errors.ts";

export const AF_UNIX = 1;
export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0x80000;
export const NETLINK_SOCK_DIAG = 4;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const CLONE_NEWNET = 0x40000000;
export const O_RDONLY = 0;
export const O_CLOEXEC = 0x80000;

/** sizeof(struct msghdr) on 64-bit Linux: name, namelen, iov, iovlen, control, controllen, flags. */
export const MSGHDR_LEN = 56;
/** sizeof(struct iovec) on 64-bit Linux: base, len. */
export const IOVEC_LEN = 16;

/** errno values the FFI layer acts upon (asm-generic/errno-base.h, errno.h). */
export const ENOENT = 2;
export const EINTR = 4;
/** Also EWOULDBLOCK on Linux. */
export const EAGAIN = 11;
export const ETIME = 62;
export const EOPNOTSUPP = 95;
export const ECANCELED = 125;

/**
 * Consecutive EINTRs a call is retried through before the OsError EINTR is thrown: a signal
 * interrupts a receive that has SO_RCVTIMEO (or an io_uring wait) even under SA_RESTART, which
 * Deno's signal listeners use; a storm of signals must still end the call.
 */
export const MAX_EINTR_RETRIES = 100;

/**
 * The symbols, each parameter and result with its C type. `ssize_t` and `long` results are read
 * as i32, the low half of the 64-bit register: every count, fd and id returned here is far below
 * 2^31, and -1 stays -1. An i64 result would come back through a JS wrapper that makes a bigint
 * after the call, an allocation (so possibly a GC, whose work can set errno) between the call
 * and the errno read.
 */
const SYMBOLS = {
  /** void _exit(int status) */
  _exit: { parameters: ["i32"], result: "void" },
  /** int socket(int domain, int type, int protocol) */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen) */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen) */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /** ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags) — as i32, see above */
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** ssize_t recvmsg(int sockfd, struct msghdr *msg, int flags) — as i32, see above */
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen) */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int close(int fd) */
  close: { parameters: ["i32"], result: "i32" },
  /** int setns(int fd, int nstype) */
  setns: { parameters: ["i32", "i32"], result: "i32" },
  /** int open(const char *pathname, int flags) — the mode argument is unused without O_CREAT */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  /** ssize_t readlink(const char *pathname, char *buf, size_t bufsiz) — as i32 */
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
  /** DIR *opendir(const char *name) */
  opendir: { parameters: ["buffer"], result: "pointer" },
  /** struct dirent *readdir(DIR *dirp) */
  readdir: { parameters: ["pointer"], result: "pointer" },
  /** int closedir(DIR *dirp) */
  closedir: { parameters: ["pointer"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count) — as i32 */
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /** ssize_t sendto(int sockfd, const void *buf, size_t len, int flags, const struct sockaddr *dest_addr, socklen_t addrlen) — as i32 */
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "i32" },
  /** int listen(int sockfd, int backlog) */
  listen: { parameters: ["i32", "i32"], result: "i32" },
  /** int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen) */
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags) */
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  /** ssize_t write(int fd, const void *buf, size_t count) — as i32 */
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /**
   * long syscall(long number, ...) — variadic in C; called with six integer arguments, which the
   * x86-64 and arm64 calling conventions pass exactly as for a fixed signature. As i32: the calls
   * made here return small counts, fds and ids, or -1.
   */
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i32" },
  /** void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  /** int munmap(void *addr, size_t length) */
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  /**
   * int ioctl(int fd, unsigned long request, ...) — variadic in C; called with one pointer
   * argument, passed as for a fixed signature on x86-64 and arm64.
   */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** int capget(cap_user_header_t hdrp, cap_user_data_t datap) */
  capget: { parameters: ["buffer", "buffer"], result: "i32" },
  /** int *__errno_location(void) */
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

interface Opened {
  readonly symbols: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** The calling thread's errno, viewed in place (`*__errno_location()`). */
  readonly errno: Int32Array;
}

let opened: Opened | undefined;

/**
 * Opens libc and makes the one view of this thread's errno. The module is instantiated once per
 * isolate, and each isolate (the main thread, every Worker) runs on its own thread, so the view
 * made here is the errno of the only thread that calls through this instance.
 */
function open(): Opened {
  const lib = Deno.dlopen("libc.so.6", SYMBOLS);
  const p = lib.symbols.__errno_location();
  if (p === null) throw new Error("Libc has no errno: __errno_location() returned NULL");
  return {
    symbols: lib.symbols,
    errno: new Int32Array(Deno.UnsafePointerView.getArrayBuffer(p, 4)),
  };
}

/** The opened libc (opened on first use, so importing this module needs no permission). */
export function libc(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  return (opened ??= open()).symbols;
}

/** libc and this thread's errno view. */
function lc(): Opened {
  return opened ??= open();
}

/**
 * errno of the calling thread, right now: one load from a view made once, so reading it neither
 * allocates nor calls into libc.
 *
 * Read it as the very next thing after the call, in the same expression or statement, as the
 * wrappers here do (`check(op, c.symbols.x(…), c.errno[0])`): a JS function call or an
 * allocation in between lets V8 run its own work on this thread (interrupts at function entry,
 * a GC), and that work can set errno. Seen here: a contended lock inside V8 made abseil open
 * /sys/devices/system/cpu/cpu0/tsc_freq_khz (ENOENT) between a failed sendto and its errno read.
 *
 * @example
 * ```ts
 * libc().close(-1);
 * errno(); // 9 (EBADF)
 * ```
 */
export function errno(): number {
  return lc().errno[0];
}

/** The result of a call; throws OsError with `err` (errno read right after it) when negative. */
function check(op: string, rc: number, err: number, context?: string): number {
  if (rc < 0) throw new OsError(op, err, context);
  return rc;
}

/** socket(2); throws OsError. */
export function sysSocket(domain: number, type: number, protocol: number): number {
  const c = lc();
  return check("socket", c.symbols.socket(domain, type, protocol), c.errno[0]);
}

/** bind(2); throws OsError. */
export function sysBind(fd: number, addr: Uint8Array): void {
  const c = lc();
  check("bind", c.symbols.bind(fd, addr, addr.length), c.errno[0]);
}

/** getsockname(2) into `addr`; returns the address length. */
export function sysGetsockname(fd: number, addr: Uint8Array): number {
  const len = new Uint32Array([addr.length]);
  const c = lc();
  check("getsockname", c.symbols.getsockname(fd, addr, len), c.errno[0]);
  return len[0];
}

/**
 * The OsError EINTR of a call given up after {@link MAX_EINTR_RETRIES} retries.
 *
 * @example
 * ```ts
 * interruptedTooOften("recvmsg").message;
 * // "recvmsg failed: EINTR (errno 4): interrupted system call: interrupted 101 times in a row"
 * ```
 */
export function interruptedTooOften(op: string): OsError {
  return new OsError(op, EINTR, `interrupted ${MAX_EINTR_RETRIES + 1} times in a row`);
}

/**
 * `call` (a libc call returning -1 with errno on failure), retried on EINTR at most
 * {@link MAX_EINTR_RETRIES} times in a row; errno is read right as the call returns.
 */
function retryingEintr(op: string, call: () => number): number {
  const c = lc();
  for (let retries = 0;; retries++) {
    const n = call();
    const e = c.errno[0];
    if (n >= 0) return n;
    if (e !== EINTR) throw new OsError(op, e);
    if (retries === MAX_EINTR_RETRIES) throw interruptedTooOften(op);
  }
}

/** sendmsg(2); returns bytes sent. EINTR is retried (bounded by {@link MAX_EINTR_RETRIES}). */
export function sysSendmsg(fd: number, msghdr: Uint8Array, flags = 0): number {
  const s = lc().symbols;
  return retryingEintr("sendmsg", () => s.sendmsg(fd, msghdr, flags));
}

/**
 * recvmsg(2); returns bytes received. EINTR is retried (bounded by {@link MAX_EINTR_RETRIES});
 * each retry waits SO_RCVTIMEO afresh.
 */
export function sysRecvmsg(fd: number, msghdr: Uint8Array, flags = 0): number {
  const s = lc().symbols;
  return retryingEintr("recvmsg", () => s.recvmsg(fd, msghdr, flags));
}

/** setsockopt(2). */
export function sysSetsockopt(fd: number, level: number, name: number, value: Uint8Array): void {
  const c = lc();
  check("setsockopt", c.symbols.setsockopt(fd, level, name, value, value.length), c.errno[0]);
}

/** close(2). */
export function sysClose(fd: number): void {
  const c = lc();
  check("close", c.symbols.close(fd), c.errno[0]);
}

/** listen(2). */
export function sysListen(fd: number, backlog: number): void {
  const c = lc();
  check("listen", c.symbols.listen(fd, backlog), c.errno[0]);
}

/** connect(2) (blocking). */
export function sysConnect(fd: number, addr: Uint8Array): void {
  const c = lc();
  check("connect", c.symbols.connect(fd, addr, addr.length), c.errno[0]);
}

/** accept4(2) (blocking); returns the new fd. */
export function sysAccept(fd: number, flags = SOCK_CLOEXEC): number {
  const c = lc();
  return check("accept4", c.symbols.accept4(fd, null, null, flags), c.errno[0]);
}

/**
 * _exit(2): ends the process at once, without exit handlers or static destructors. For a
 * process that loaded a library whose destructors race its own threads at exit (libchdb).
 */
export function sysExitNow(status: number): never {
  lc().symbols._exit(status);
  throw new Error("_exit returned");
}

/** write(2); returns bytes written. */
export function sysWrite(fd: number, buf: Uint8Array): number {
  const c = lc();
  const len = BigInt(buf.length);
  return check("write", c.symbols.write(fd, buf, len), c.errno[0]);
}

/** read(2) (blocking); returns bytes read, 0 at end of file. */
export function sysRead(fd: number, buf: Uint8Array): number {
  const c = lc();
  return check("read", c.symbols.read(fd, buf, BigInt(buf.length)), c.errno[0]);
}

/** A raw system call with up to six integer arguments; throws OsError named `name`. */
export function sysCall(name: string, nr: number, ...args: (number | bigint)[]): number {
  const a = [...args, 0, 0, 0, 0, 0, 0];
  const rc = sysCallErrno(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (rc < 0) throw new OsError(name, -rc);
  return rc;
}

/**
 * A raw system call with six integer arguments: returns its result, or −errno when it failed
 * (the kernel's convention), without throwing. Bigint arguments are passed as they are; numbers
 * are converted (FFI takes 64-bit integers as bigints).
 *
 * @example
 * ```ts
 * sysCallErrno(3, -1, 0, 0, 0, 0, 0); // close(-1): -9 (−EBADF) on x86-64
 * ```
 */
export function sysCallErrno(
  nr: number,
  a0: number | bigint,
  a1: number | bigint,
  a2: number | bigint,
  a3: number | bigint,
  a4: number | bigint,
  a5: number | bigint,
): number {
  const n = BigInt(nr);
  const b0 = BigInt(a0);
  const b1 = BigInt(a1);
  const b2 = BigInt(a2);
  const b3 = BigInt(a3);
  const b4 = BigInt(a4);
  const b5 = BigInt(a5);
  const c = lc();
  const rc = c.symbols.syscall(n, b0, b1, b2, b3, b4, b5);
  const e = c.errno[0];
  return rc < 0 ? -e : rc;
}

/**
 * mmap(2) of a file descriptor, shared, read-write; returns the mapping. (A pointer result is an
 * object Deno makes before errno can be read: the one call here whose errno read is not
 * immediate; it only matters at ring setup.)
 */
export function sysMmapShared(fd: number, length: number, offset: bigint): Deno.PointerObject {
  const PROT_READ_WRITE = 3;
  const MAP_SHARED_POPULATE = 0x01 | 0x8000;
  const len = BigInt(length);
  const c = lc();
  const p = c.symbols.mmap(null, len, PROT_READ_WRITE, MAP_SHARED_POPULATE, fd, offset);
  const e = c.errno[0]; // meaningful only on failure
  // MAP_FAILED is (void *) -1.
  if (p === null || Deno.UnsafePointer.value(p) === 0xffffffffffffffffn) {
    throw new OsError("mmap", e);
  }
  return p;
}

/** munmap(2). */
export function sysMunmap(p: Deno.PointerObject, length: number): void {
  const c = lc();
  const len = BigInt(length);
  check("munmap", c.symbols.munmap(p, len), c.errno[0]);
}

/** ioctl(2) with a pointer argument; throws OsError (`context` names the object). */
export function sysIoctl(fd: number, request: number, arg: Uint8Array, context?: string): number {
  const c = lc();
  return check("ioctl", c.symbols.ioctl(fd, BigInt(request), arg), c.errno[0], context);
}

/** setns(2); `context` names the namespace in errors. */
export function sysSetns(fd: number, nstype: number, context?: string): void {
  const c = lc();
  check("setns", c.symbols.setns(fd, nstype), c.errno[0], context);
}

/** open(2) of an existing file; returns the fd. */
export function sysOpen(path: string, flags: number): number {
  const c = new TextEncoder().encode(path + "\0");
  const l = lc();
  return check("open", l.symbols.open(c, flags), l.errno[0], path);
}

const linkBuf = new Uint8Array(new ArrayBuffer(4096));

/**
 * readlink(2). Through libc rather than Deno.readLink: Deno asks for --allow-all on
 * `/proc/<pid>/ns/*` paths, while FFI is already granted to the daemon.
 */
export function sysReadlink(path: string): string {
  const c = new TextEncoder().encode(path + "\0");
  const l = lc();
  const len = BigInt(linkBuf.length);
  const n = check("readlink", l.symbols.readlink(c, linkBuf, len), l.errno[0], path);
  return new TextDecoder().decode(linkBuf.subarray(0, n));
}

/**
 * Inode of a namespace file, from its `net:[<inode>]` link (e.g. `/proc/self/ns/net`).
 *
 * @example
 * ```ts
 * netnsInode("/proc/self/ns/net"); // 4026531840n
 * ```
 */
export function netnsInode(path: string): bigint {
  const link = sysReadlink(path);
  const m = /^net:\[(\d+)\]$/.exec(link);
  if (!m) throw new Error(`Not a network namespace link: ${path} -> ${link}`);
  return BigInt(m[1]);
}

/**
 * sendto(2); returns bytes sent, or -1 when the send would block (EAGAIN, alias EWOULDBLOCK:
 * with MSG_DONTWAIT in `flags`, a full receiver queue). EINTR is retried (bounded by
 * {@link MAX_EINTR_RETRIES}); other failures throw OsError.
 */
export function sysSendto(
  fd: number,
  buf: Uint8Array,
  addr: Uint8Array,
  context?: string,
  flags = 0,
): number {
  const c = lc();
  const len = BigInt(buf.length);
  for (let retries = 0;; retries++) {
    const n = c.symbols.sendto(fd, buf, len, flags, addr, addr.length);
    const e = c.errno[0];
    if (n >= 0) return n;
    if (e === EAGAIN) return -1;
    if (e !== EINTR) throw new OsError("sendto", e, context);
    if (retries === MAX_EINTR_RETRIES) throw interruptedTooOften("sendto");
  }
}

/** The address of a buffer's bytes, as a bigint for C structs. */
export function addressOf(b: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
}

const fileBuf = new Uint8Array(new ArrayBuffer(64 * 1024));

/**
 * Names in a directory (without `.` and `..`), through libc: Deno's own APIs ask for
 * --allow-all to list `/proc`.
 */
export function listDir(path: string): string[] {
  const c = new TextEncoder().encode(path + "\0");
  const l = lc();
  const dir = l.symbols.opendir(c);
  const e = l.errno[0];
  if (dir === null) throw new OsError("opendir", e, path);
  const names: string[] = [];
  try {
    for (;;) {
      const ent = l.symbols.readdir(dir);
      if (ent === null) break;
      const name = new Deno.UnsafePointerView(ent).getCString(19); // d_name after ino, off, reclen, type
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    l.symbols.closedir(dir);
  }
  return names;
}

/** Reads a small file (up to 64 KiB, e.g. /proc/PID/cgroup) through libc. */
export function readSmallFile(path: string): string {
  const fd = sysOpen(path, O_RDONLY | O_CLOEXEC);
  const c = lc();
  try {
    let n = 0;
    for (;;) {
      const into = fileBuf.subarray(n);
      const len = BigInt(into.length);
      const r = check("read", c.symbols.read(fd, into, len), c.errno[0], path);
      if (r === 0 || n + r >= fileBuf.length) {
        n += r;
        break;
      }
      n += r;
    }
    return new TextDecoder().decode(fileBuf.subarray(0, n));
  } finally {
    sysClose(fd);
  }
}

/** Effective capabilities of this process as a 64-bit mask (bit N = capability N), via capget(2). */
export function effectiveCaps(): bigint {
  const hdr = new Uint32Array(new ArrayBuffer(8));
  hdr[0] = 0x20080522; // _LINUX_CAPABILITY_VERSION_3
  hdr[1] = 0; // this process
  const data = new Uint32Array(new ArrayBuffer(24)); // 2 x {effective, permitted, inheritable}
  const h = new Uint8Array(hdr.buffer);
  const d = new Uint8Array(data.buffer);
  const c = lc();
  check("capget", c.symbols.capget(h, d), c.errno[0]);
  return BigInt(data[0]) | (BigInt(data[3]) << 32n);
}
