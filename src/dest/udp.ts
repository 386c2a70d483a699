/**
 * `udp:HOST:PORT` (IPv6 as `udp:[addr]:port`): each flush as datagrams of at most 65,507 bytes.
 *
 * @module
 */
import dgram from "node:dgram";
import { splitHostPort } from "../util/address.ts";
import { DatagramDest } from "./datagram.ts";
import type { DestOptions } from "./destination.ts";

/** Largest payload of one UDP datagram over IPv4 (65535 − 20 − 8). */
export const MAX_UDP_PAYLOAD = 65507;

/** Sends flushes as UDP datagrams. */
export class UdpDest extends DatagramDest {
  /** Always "udp". */
  readonly scheme = "udp";
  private constructor(
    private readonly sock: dgram.Socket,
    private readonly host: string,
    private readonly port: number,
    opts: DestOptions,
  ) {
    super(opts, MAX_UDP_PAYLOAD);
  }

  /** A socket aimed at `addr` (HOST:PORT). */
  static open(addr: string, opts: DestOptions): UdpDest {
    const { host, port } = splitHostPort(addr);
    const sock = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
    sock.on("error", (err) => opts.log.error(`udp ${addr}: ${err.message}`));
    return new UdpDest(sock, host, port, opts);
  }

  /** Sends one datagram (resolves once the OS took it). */
  protected sendOne(b: Uint8Array): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.sock.send(b, this.port, this.host, (err) => (err ? reject(err) : resolve(true)))
    );
  }

  /** Closes the socket. */
  [Symbol.asyncDispose](): Promise<void> {
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }
}
