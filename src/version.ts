/** The xtcp2 version, stamped as `daemon_version` on every record. */
export const VERSION = "0.1.0";
