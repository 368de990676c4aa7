/**
 * Libraries whose writes the agent cannot see: embedded databases that open and write
 * their files from native code (C, C++ or Rust), never through Node's fs, so no wrapper
 * journals them. The first time one is loaded the agent says so, once per library per
 * process (its worker threads included), naming it and UNDERSTUDY_WATCH.
 *
 * Loading is seen at `process.dlopen`, the one door every native addon passes, whether
 * its package was reached by `require` or by `import` (Node loads a CommonJS package's
 * `.node` file through require either way). That costs a process that loads none of
 * them nothing: no module is hooked, no loader registered, nothing runs per require.
 */
import { getEnvironmentData, setEnvironmentData } from 'node:worker_threads';
import { warnOnce } from './log';

/** One library that writes its files from native code. */
export interface UnseenStore {
  /** The package the application installs, as the notice names it. */
  library: string;
  /** What it stores, for the notice. */
  kind: string;
  /** The packages its addon (`.node` file) may be loaded from: a name, or a scope as `@scope/`. */
  addons: readonly string[];
  /** Where a file snapshot of it may be caught halfway (what UNDERSTUDY_WATCH gives). */
  torn: string;
  /**
   * For a store the agent captures (better-sqlite3): whether its wrapper is in place. Its addon
   * loading while it is not means the library was reached where no hook runs (an ES module
   * under --require): then, and only then, it is said.
   */
  wrapped?: () => boolean;
}

/** Set by the better-sqlite3 wrapper (agent/shims/libs/better-sqlite3) when it patches a copy of the library. */
export const SQLITE_WRAPPED = Symbol.for('understudy.sqlite.wrapped');

/**
 * The list. Each entry is an embedded store whose engine writes its database files itself;
 * wrappers over one of them (`level` over classic-level, `sqlite` over sqlite3,
 * `@libsql/client` over libsql) load its addon and so are named by it. Not listed: clients
 * of a server (its files are the server's), and stores written through Node's fs (seen).
 */
export const UNSEEN_STORES: readonly UnseenStore[] = [
  // Captured commit by commit (agent/sqlite), when the require hook or --import's loader reached it.
  { library: 'better-sqlite3', kind: 'SQLite', addons: ['better-sqlite3'], torn: 'between a commit and a checkpoint', wrapped: () => (globalThis as { [SQLITE_WRAPPED]?: boolean })[SQLITE_WRAPPED] === true },
  { library: 'sqlite3', kind: 'SQLite', addons: ['sqlite3'], torn: 'between a commit and a checkpoint' },
  // better-sqlite3's API over libSQL; its addon ships in @libsql/<platform> packages.
  { library: 'libsql', kind: 'SQLite', addons: ['libsql', '@libsql/'], torn: 'between a commit and a checkpoint' },
  // LevelDB: `level` loads classic-level (before level 8: leveldown).
  { library: 'classic-level', kind: 'LevelDB', addons: ['classic-level'], torn: 'between a log write and a compaction' },
  { library: 'leveldown', kind: 'LevelDB', addons: ['leveldown'], torn: 'between a log write and a compaction' },
  { library: 'rocksdb', kind: 'RocksDB', addons: ['rocksdb'], torn: 'between a log write and a compaction' },
  // LMDB writes its memory-mapped data file in place; lmdb's prebuilt addons are @lmdb/lmdb-<platform>.
  { library: 'lmdb', kind: 'LMDB', addons: ['lmdb', '@lmdb/'], torn: 'in the middle of a commit' },
  { library: 'node-lmdb', kind: 'LMDB', addons: ['node-lmdb'], torn: 'in the middle of a commit' },
  { library: 'duckdb', kind: 'DuckDB', addons: ['duckdb'], torn: 'between a commit and a checkpoint' },
  // @duckdb/node-api's addon ships in @duckdb/node-bindings-<platform>.
  { library: '@duckdb/node-api', kind: 'DuckDB', addons: ['@duckdb/'], torn: 'between a commit and a checkpoint' },
  // Realm (MongoDB's embedded store, its Atlas Device Sync aside) writes its file from C++.
  { library: 'realm', kind: 'Realm', addons: ['realm'], torn: 'in the middle of a commit' },
  // Lance datasets are written by Rust; the addon ships in @lancedb/lancedb-<platform>.
  { library: '@lancedb/lancedb', kind: 'Lance', addons: ['@lancedb/'], torn: 'between a data file and its manifest' },
];

/** The package a file under node_modules belongs to (the innermost one), or undefined. */
export function packageOf(file: string): string | undefined {
  const parts = file.split(/[\\/]/);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0 || at + 1 >= parts.length) return undefined;
  const first = parts[at + 1];
  if (!first.startsWith('@')) return first;
  return at + 2 < parts.length ? `${first}/${parts[at + 2]}` : undefined;
}

/** The store whose addon `file` is, if it is one of the list's. */
export function storeOfAddon(file: string): UnseenStore | undefined {
  const pkg = packageOf(file);
  if (pkg === undefined) return undefined;
  return UNSEEN_STORES.find((s) => s.addons.some((a) => (a.endsWith('/') ? pkg.startsWith(a) : pkg === a)));
}

/** The notice for `store`: what is not seen, and what UNDERSTUDY_WATCH gives (or would). */
export function unseenNotice(store: UnseenStore, watch: boolean): string {
  if (store.wrapped !== undefined) {
    return `${store.library} was loaded where understudy could not wrap it (an ES module's import under --require understudy/agent: start with --import understudy/agent), so its ${store.kind} commits are not replicated` +
      (watch ? `; UNDERSTUDY_WATCH=1 replicates its files as snapshots, which may be torn ${store.torn}` : ' unless UNDERSTUDY_WATCH=1 (snapshots, not transactions)');
  }
  const head = `${store.library} writes its ${store.kind} files from native code, which understudy does not see`;
  return watch
    ? `${head}; UNDERSTUDY_WATCH=1 replicates its files under the roots as snapshots, not transactions, which may be torn ${store.torn}`
    : `${head}: its files under the roots are not replicated unless UNDERSTUDY_WATCH=1 (snapshots, not transactions)`;
}

const KEY = 'understudy.unseen';
let installed = false;

/**
 * Says, the first time a listed store's addon is loaded in this process, that its writes
 * are not seen. One byte per store in a SharedArrayBuffer that every thread shares (as
 * threads.ts does) makes it once per process, not once per thread.
 */
export function watchUnseenStores(watch: boolean): void {
  if (installed) return;
  installed = true;
  try {
    const inherited = getEnvironmentData(KEY);
    const said = new Int32Array(inherited instanceof SharedArrayBuffer ? inherited : new SharedArrayBuffer(4 * UNSEEN_STORES.length));
    setEnvironmentData(KEY, said.buffer as SharedArrayBuffer);
    const dlopen = process.dlopen;
    const wrapped = function (this: unknown, ...args: Parameters<typeof process.dlopen>): void {
      // The addon loads first: one that fails to load stores nothing, and its error is the host's own.
      Reflect.apply(dlopen, this, args);
      try {
        const store = storeOfAddon(String(args[1]));
        if (store === undefined || store.wrapped?.() === true) return;
        if (Atomics.compareExchange(said, UNSEEN_STORES.indexOf(store), 0, 1) !== 0) return;
        warnOnce(`unseen:${store.library}`, unseenNotice(store, watch));
      } catch {
        // Never into the host: the notice is advice, the load already succeeded.
      }
    };
    process.dlopen = wrapped;
  } catch (err) {
    warnOnce('unseen', `native stores (${UNSEEN_STORES.map((s) => s.library).join(', ')}) are not told about: ${(err as Error).message}`);
  }
}
