/**
 * A file descriptor owned by one object: closed once (idempotent), refused after close with the
 * owner's own error, released with `using`.
 *
 * @module
 */
import { sysClose } from "./libc.ts";

/** Base of the objects that own one file descriptor (sockets, rings, namespace files). */
export abstract class OwnedFd implements Disposable {
  #fd: number;

  /** @param fd the descriptor this object now owns */
  protected constructor(fd: number) {
    this.#fd = fd;
  }

  /** The error a use after close throws (`op` names the use). */
  protected abstract closedError(op: string): Error;

  /** The file descriptor (throws once closed). */
  get fd(): number {
    if (this.#fd < 0) throw this.closedError("fd");
    return this.#fd;
  }

  /** Whether {@link OwnedFd.close} was called. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Throws the owner's closed error when closed (for the methods that do not read `fd`). */
  protected open(op: string): void {
    if (this.#fd < 0) throw this.closedError(op);
  }

  /** Closes the descriptor (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    sysClose(fd);
  }

  /** Same as {@link OwnedFd.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
