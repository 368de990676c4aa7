import type { LibraryShim } from './types';

/**
 * better-sqlite3: what a commit changed is journaled after each call that may have committed
 * (better-sqlite3-patch, agent/sqlite). Loaded only when an application requires the library:
 * a process that opens no database pays nothing for it at start.
 */
export const betterSqliteShim: LibraryShim = {
  module: 'better-sqlite3',
  patch(exports) {
    return (require('./better-sqlite3-patch') as typeof import('./better-sqlite3-patch')).patchBetterSqlite(exports);
  },
};
