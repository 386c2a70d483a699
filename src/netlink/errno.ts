/**
 * Symbolic errno names for kernel error codes (shared with the FFI layer, which owns the table).
 *
 * @module
 */
export { errnoName } from "../../ffi/errors.ts";
