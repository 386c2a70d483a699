/**
 * Moved to tests/support/loadgen/loadgen.ts (tests and benches both use it). This re-export stays
 * only until tests/brokers_test.ts imports the new path; then it is deleted.
 *
 * @module
 */
export * from "../tests/support/loadgen/loadgen.ts";
