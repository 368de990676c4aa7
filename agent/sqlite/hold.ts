/** What of a better-sqlite3 connection holding a read transaction needs. */
export interface ReadConnection {
  exec(sql: string): unknown;
  prepare(sql: string): { pluck(on?: boolean): { get(): unknown } };
  close(): void;
}

/**
 * Runs `read` inside a read transaction of `conn`: SQLite's SHARED lock is held throughout, so
 * no other process can commit and a rollback-mode database's file holds one state meanwhile.
 */
export function inReadTransaction<T>(conn: ReadConnection, read: () => T): T {
  conn.exec('BEGIN');
  try {
    // The first read of a deferred transaction takes the lock, held until COMMIT.
    conn.prepare('SELECT count(*) FROM sqlite_schema').pluck().get();
    return read();
  } finally {
    conn.exec('COMMIT');
  }
}
