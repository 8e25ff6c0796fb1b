import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { migrations } from './migrations.js';

export type Db = Database.Database;

/**
 * Opens the metadata database and applies pending migrations in order, each in its own
 * transaction, recording the schema version in `user_version`.
 */
export function openDb(path: string): Db {
  // owner-only: SQLite gives the -wal and -shm files the database file's mode
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 10000');
  migrate(db);
  cacheStatements(db);
  return db;
}

const STATEMENT_CACHE_SIZE = 256;

/**
 * Makes `db.prepare` reuse compiled statements. Services prepare their SQL where they use it,
 * which keeps each query next to its code; the daemon runs some on every request (key lookup,
 * audit entry), where compiling each time costs more than running. Statements here are only
 * run with get/all/run, never held open by iterate(), so sharing one is safe.
 */
function cacheStatements(db: Db): void {
  const compile = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = cache.get(sql);
    if (statement) {
      cache.delete(sql); // re-inserted below: the Map's order is least recently used first
    } else {
      statement = compile(sql);
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
    }
    cache.set(sql, statement);
    return statement;
  }) as Db['prepare'];
}

export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(`this workspace was written by a newer Kennel (schema ${current}); upgrade Kennel to use it`);
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

/** Tables that keep a bounded history per endpoint, newest rows kept (rows numbered by an `id` in arrival order). */
export type EndpointHistoryTable = 'endpoint_events' | 'shadow_results' | 'captures' | 'drift_results';

/** Deletes an endpoint's rows of `table` beyond its newest `keep`; returns how many went. */
export function keepNewestRows(db: Db, table: EndpointHistoryTable, endpoint: string, keep: number): number {
  return db.prepare(`DELETE FROM ${table} WHERE endpoint = ? AND id <= (SELECT id FROM ${table} WHERE endpoint = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`).run(endpoint, endpoint, keep).changes;
}
