import { chmodSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openDb, type Db } from './db.js';
import { LocalArtifactStore, type ArtifactStore } from './artifacts.js';

/**
 * A workspace is everything Kennel keeps: the SQLite metadata (`kennel.db`), the
 * content-addressed artifacts (`artifacts/`), and scratch space (`tmp/`). It lives at
 * KENNEL_HOME, default `./.kennel`.
 */
export interface Workspace {
  home: string;
  db: Db;
  artifacts: ArtifactStore;
  tmpDir: string;
  close(): void;
}

export function defaultHome(): string {
  return resolve(process.env.KENNEL_HOME || '.kennel');
}

/** The artifact store inside a workspace folder; workers open only this, never the database. */
export function openArtifactStore(home: string): LocalArtifactStore {
  return new LocalArtifactStore(join(resolve(home), 'artifacts'));
}

/** The workspace folder is the owner's only (0700), its database files 0600: keys' hashes, the audit log and sealed secrets live there. */
export function openWorkspace(home = defaultHome()): Workspace {
  const root = resolve(home);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  const tmpDir = join(root, 'tmp');
  mkdirSync(tmpDir, { recursive: true });
  const db = openDb(join(root, 'kennel.db'));
  return {
    home: root,
    db,
    artifacts: openArtifactStore(root),
    tmpDir,
    close: () => db.close(),
  };
}

export const now = (): string => new Date().toISOString();
