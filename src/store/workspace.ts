import { chmodSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Errors } from '../core/index.js';
import { openDb, type Db } from './db.js';
import { LocalArtifactStore, type ArtifactStore } from './artifacts.js';
import { S3ArtifactStore } from './s3.js';

/**
 * A workspace is everything Kennel keeps: the SQLite metadata (`kennel.db`), the
 * content-addressed artifacts (`artifacts/`, or an S3 bucket with KENNEL_ARTIFACTS), and scratch
 * space (`tmp/`). It lives at KENNEL_HOME, default `./.kennel`.
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

/** The artifact folder inside a workspace folder (the embedded default store). */
export function openArtifactStore(home: string): LocalArtifactStore {
  return new LocalArtifactStore(join(resolve(home), 'artifacts'));
}

/** Where artifacts live: the workspace folder, or an S3-compatible bucket. */
export interface ArtifactsConfig {
  /** s3://bucket/prefix; unset: the workspace's artifacts/ folder */
  url?: string;
  /** the S3 API's URL; unset: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS's own */
  endpoint?: string;
  /** the local read-through cache (default: KENNEL_HOME/cache/artifacts, or ~/.cache/kennel/artifacts without a workspace) */
  cacheDir?: string;
  cacheBytes?: number;
}

const DEFAULT_CACHE_GB = 10;

/** The configuration from KENNEL_ARTIFACTS, KENNEL_ARTIFACTS_ENDPOINT, KENNEL_ARTIFACTS_CACHE and KENNEL_ARTIFACTS_CACHE_GB (the CLI's --artifacts options set these). */
export function artifactsConfig(env: NodeJS.ProcessEnv = process.env): ArtifactsConfig {
  const gb = env.KENNEL_ARTIFACTS_CACHE_GB ? Number(env.KENNEL_ARTIFACTS_CACHE_GB) : DEFAULT_CACHE_GB;
  if (!Number.isFinite(gb) || gb <= 0) throw Errors.InvalidArtifactsUrl(`KENNEL_ARTIFACTS_CACHE_GB must be a positive number of GiB, not "${env.KENNEL_ARTIFACTS_CACHE_GB}".`, 'Set it to the disk space the local artifact cache may use, e.g. 10.');
  return { url: env.KENNEL_ARTIFACTS || undefined, endpoint: env.KENNEL_ARTIFACTS_ENDPOINT || undefined, cacheDir: env.KENNEL_ARTIFACTS_CACHE || undefined, cacheBytes: gb * 1024 ** 3 };
}

/**
 * The artifact store configured for this process: an S3 store when KENNEL_ARTIFACTS is an s3://
 * URL, else the artifacts/ folder of `home`. A worker passes no home: it needs the S3 store.
 */
export function openArtifacts(home: string | undefined, config: ArtifactsConfig = artifactsConfig()): ArtifactStore {
  if (config.url) {
    if (!config.url.startsWith('s3://')) throw Errors.InvalidArtifactsUrl(`"${config.url}" is not an S3 URL.`);
    const cacheDir = config.cacheDir ?? (home ? join(resolve(home), 'cache', 'artifacts') : join(homedir(), '.cache', 'kennel', 'artifacts'));
    return new S3ArtifactStore({ url: config.url, endpoint: config.endpoint, cacheDir: resolve(cacheDir), cacheBytes: config.cacheBytes ?? DEFAULT_CACHE_GB * 1024 ** 3 });
  }
  if (!home) throw Errors.InvalidArtifactsUrl('No artifact store is configured.', 'Give --artifacts s3://BUCKET/PREFIX (or KENNEL_ARTIFACTS), or --home with the coordinator\'s shared KENNEL_HOME.');
  return openArtifactStore(home);
}

/** The workspace folder is the owner's only (0700), its database files 0600: keys' hashes, the audit log and sealed secrets live there. */
export function openWorkspace(home = defaultHome()): Workspace {
  const root = resolve(home);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  chmodSync(root, 0o700);
  const tmpDir = join(root, 'tmp');
  mkdirSync(tmpDir, { recursive: true });
  const artifacts = openArtifacts(root);
  const db = openDb(join(root, 'kennel.db'));
  return {
    home: root,
    db,
    artifacts,
    tmpDir,
    close: () => {
      db.close();
      if (artifacts instanceof S3ArtifactStore) artifacts.close();
    },
  };
}

export const now = (): string => new Date().toISOString();
