/**
 * The error of a configuration that cannot be used.
 *
 * @module
 */

/**
 * A configuration that cannot be used: one line naming the flag, the value and the rule. The
 * daemon prints it and exits with status 2 before starting anything.
 *
 * @example
 * ```ts
 * throw new ConfigError('Invalid value for --frequency: "soon": must be a duration such as 10s');
 * ```
 */
export class ConfigError extends Error {
  /** Never worth retrying: the same configuration fails the same way. */
  readonly retriable = false;
  /**
   * @param message the problem
   * @param options the underlying error, if any
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}
