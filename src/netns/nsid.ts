/**
 * Namespace ids (`-populateNsid`): one rtnetlink socket in the daemon's own namespace asks
 * RTM_GETNSID for each namespace, by its file descriptor.
 *
 * @module
 */
import { sysClose } from "../../ffi/libc.ts";
import { NetlinkSocket } from "../../ffi/netlink_socket.ts";
import { openNetnsFd } from "../../ffi/netns.ts";
import { GETNSID_REQUEST_LEN, parseNsidReply, writeGetNsidRequest } from "../netlink/rtnl_nsid.ts";

const NETLINK_ROUTE = 0;

/** Asks the kernel for the id of each namespace. */
export class NsidResolver implements Disposable {
  private readonly sock = NetlinkSocket.open({ protocol: NETLINK_ROUTE, rcvTimeoutMs: 1000 });
  private readonly req = new Uint8Array(new ArrayBuffer(GETNSID_REQUEST_LEN));
  private readonly buf = new Uint8Array(new ArrayBuffer(4096));
  private seq = 1;

  /**
   * The id of the namespace at `path` as the daemon's namespace knows it, or undefined when it
   * has none (the kernel answers -1) or cannot say.
   */
  nsidOf(path: string): number | undefined {
    const fd = openNetnsFd(path);
    try {
      writeGetNsidRequest(this.req, fd, this.seq++);
      this.sock.send(this.req);
      for (;;) {
        const r = parseNsidReply(this.buf, this.sock.recv(this.buf));
        if (!r) continue;
        if ("errno" in r) return undefined;
        return r.nsid >= 0 ? r.nsid : undefined;
      }
    } finally {
      sysClose(fd);
    }
  }

  /** Closes the rtnetlink socket. */
  [Symbol.dispose](): void {
    this.sock.close();
  }
}
