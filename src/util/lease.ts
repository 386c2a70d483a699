/**
 * Bytes lent by their owner: the borrower reads them until it calls {@link Lease.release},
 * once, after which the owner may write over them.
 *
 * @module
 */

/** A loan of bytes; `release` gives them back (a second call does nothing). */
export interface Lease {
  release(): void;
}
