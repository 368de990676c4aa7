/** A function as the wrappers see it. */
export type Fn = (this: unknown, ...args: unknown[]) => unknown;

/**
 * How one library is wrapped: `patch` gets what the library exports (module.exports
 * under require, the namespace's `default` under import) and returns what the
 * application should get instead (the same object when only prototypes are patched).
 */
export interface LibraryShim {
  /** The package name, as required or imported. */
  module: string;
  /** True for ESM-only packages: reachable only through `--import understudy/agent`. */
  esmOnly?: boolean;
  patch(exports: unknown): unknown;
}

/** Store names of the configuration libraries; fixed, they are what `config show` and readConfigReplica take. */
export const STORES = { env: 'env', nconf: 'nconf', convict: 'convict', conf: 'conf' } as const;
