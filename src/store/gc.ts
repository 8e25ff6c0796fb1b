import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { isAlive } from '../core/index.js';
import { LocalArtifactStore } from './artifacts.js';
import { S3ArtifactStore } from './s3.js';
import { openArtifactStore, type Workspace } from './workspace.js';

/** Files younger than this are never removed: an import or training may be about to reference them. */
export const DEFAULT_GRACE_MS = 3600_000;
const TIMESTAMP_SLACK_MS = 2000;

export interface CollectOptions {
  /** remove the garbage; without it only report what would go (a dry run) */
  apply: boolean;
  /** keep anything modified within this many ms (default one hour) */
  graceMs?: number;
  /**
   * A change that drops references (a delete), run between two reference scans: what only it
   * released is removed whatever its age, unless it was touched (reused) after the change began.
   */
  release?: () => void;
}

export type GarbageKind = 'artifact' | 'temp' | 'partial-download';

export interface GarbageItem {
  /** relative to the workspace folder */
  path: string;
  kind: GarbageKind;
  bytes: number;
}

export interface CollectReport {
  applied: boolean;
  graceMs: number;
  items: GarbageItem[];
  bytes: number;
  /** artifacts kept: referenced, or too recent to judge */
  kept: { referenced: number; recent: number };
}

/**
 * Logs that name artifacts only as history; they are never read back as artifact keys, and can
 * be large, so the reference scan skips them.
 */
const LOG_TABLES = new Set(['audit_log', 'endpoint_events']);
const SHA_IN_TEXT = /[0-9a-f]{64}/g;
/** JSON artifacts (dataset manifests, telemetry) can name other artifacts; larger blobs are binary. */
const MAX_SCANNED_DOCUMENT = 256 * 1024 * 1024;

function shasIn(text: string, into: Set<string>): void {
  for (const m of text.matchAll(SHA_IN_TEXT)) into.add(m[0]);
}

/**
 * Every artifact the workspace references. Conservative by design: any sha256-looking string in
 * any text column of any table counts (whatever area stored it: dataset manifests, backbones,
 * feature chunks, model versions, function code, job results such as telemetry), and so does any
 * such string inside a referenced JSON document (a dataset manifest lists its images).
 */
function referencedArtifacts(ws: Workspace, pathOf: (sha: string) => string): Set<string> {
  const refs = rowReferences(ws);
  const pending = [...refs];
  const head = Buffer.alloc(1);
  while (pending.length) {
    const path = pathOf(pending.pop()!);
    if (!existsSync(path) || statSync(path).size > MAX_SCANNED_DOCUMENT) continue;
    const fd = openSync(path, 'r');
    const read = readSync(fd, head, 0, 1, 0);
    closeSync(fd);
    if (read === 0 || !isJsonStart(head[0]!)) continue;
    followInner(readFileSync(path, 'latin1'), refs, pending);
  }
  return refs;
}

/** Every sha256-looking string in the workspace's tables (but the logs). */
function rowReferences(ws: Workspace): Set<string> {
  const refs = new Set<string>();
  const tables = ws.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as Array<{ name: string }>;
  for (const { name } of tables) {
    if (LOG_TABLES.has(name)) continue;
    for (const row of ws.db.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>) {
      for (const v of Object.values(row)) if (typeof v === 'string') shasIn(v, refs);
    }
  }
  return refs;
}

/** a JSON object or array */
const isJsonStart = (byte: number): boolean => byte === 0x7b || byte === 0x5b;

function followInner(text: string, refs: Set<string>, pending: string[]): void {
  const inner = new Set<string>();
  shasIn(text, inner);
  for (const sha of inner) {
    if (refs.has(sha)) continue;
    refs.add(sha);
    pending.push(sha);
  }
}

/** The same references for a remote store: JSON documents are recognised by a ranged read of their first byte. */
async function remoteReferences(ws: Workspace, store: S3ArtifactStore, listed: Map<string, { bytes: number }>): Promise<Set<string>> {
  const refs = rowReferences(ws);
  const pending = [...refs];
  while (pending.length) {
    const sha = pending.pop()!;
    const blob = listed.get(sha);
    if (!blob || blob.bytes === 0 || blob.bytes > MAX_SCANNED_DOCUMENT) continue;
    const first = await store.firstByte(sha);
    if (first === undefined || !isJsonStart(first)) continue;
    followInner(Buffer.from(await store.get(sha)).toString('latin1'), refs, pending);
  }
  return refs;
}

/**
 * When a file last changed here: ctime as well as mtime, since an extracted or copied file can
 * carry an old mtime from elsewhere, while ctime is set by every write, rename and touch.
 */
const changedAt = (st: { mtimeMs: number; ctimeMs: number }): number => Math.max(st.mtimeMs, st.ctimeMs);

/** Files under `dir` (recursively), with their size and when they last changed. */
function* filesUnder(dir: string): Generator<{ path: string; bytes: number; changedAt: number }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) yield* filesUnder(path);
    else yield { path, bytes: st.size, changedAt: changedAt(st) };
  }
}

/**
 * The workspace's garbage collector, used by `kennel gc` and by every delete: removes artifacts
 * no row references, and stale temp files (scratch in tmp/, interrupted downloads, temp files a
 * crashed write left beside an artifact). Nothing modified within the grace period goes, nor any
 * artifact written since the oldest still-running job started, so a concurrent import, training
 * or tuning job (whose references are not recorded yet) keeps its files.
 */
export function collectGarbage(ws: Workspace, opts: CollectOptions): CollectReport {
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  // with a remote store the workspace folder holds no artifacts: collectStoreGarbage collects the bucket
  const local = ws.artifacts instanceof LocalArtifactStore;
  const store = openArtifactStore(ws.home);
  const root = store.root;
  const pathOf = (sha: string) => store.pathOf(sha);
  const cutoff = cutoffOf(ws, graceMs);
  const started = Date.now();
  let released = new Set<string>();
  if (opts.release) {
    const before = local ? referencedArtifacts(ws, pathOf) : new Set<string>();
    opts.release();
    released = before;
  }
  const refs = local ? referencedArtifacts(ws, pathOf) : new Set<string>();
  const expiresAt = (name: string) => (released.has(name) ? started : cutoff);
  const items: Array<GarbageItem & { abs: string; before: number }> = [];
  const kept = { referenced: 0, recent: 0 };
  const add = (abs: string, kind: GarbageKind, bytes: number, before = cutoff) => items.push({ abs, path: relative(ws.home, abs), kind, bytes, before });

  for (const f of local ? filesUnder(root) : []) {
    const name = relative(root, f.path).replace('/', '');
    const isBlob = /^[0-9a-f]{64}$/.test(name);
    if (isBlob && refs.has(name)) kept.referenced++;
    else if (f.changedAt >= expiresAt(name)) kept.recent++;
    else add(f.path, isBlob ? 'artifact' : 'temp', f.bytes, expiresAt(name));
  }
  for (const f of filesUnder(ws.tmpDir)) if (f.changedAt < cutoff) add(f.path, 'temp', f.bytes);
  for (const f of filesUnder(join(ws.home, 'downloads'))) if (f.path.endsWith('.part') && f.changedAt < cutoff) add(f.path, 'partial-download', f.bytes);

  if (opts.apply) {
    for (const item of items) {
      // checked again: an import may have reused (and so touched) the blob since the scan
      const st = lstatSync(item.abs, { throwIfNoEntry: false });
      if (st && changedAt(st) < item.before) rmSync(item.abs, { force: true });
    }
    removeEmptyFolders(ws.tmpDir, cutoff);
  }
  return { applied: opts.apply, graceMs, items: items.map(({ abs: _abs, before: _before, ...item }) => item), bytes: items.reduce((n, i) => n + i.bytes, 0), kept };
}

/** Removes the empty folders an extraction left under `dir` (not `dir` itself, nor one just made). */
function removeEmptyFolders(dir: string, cutoff: number): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (!st.isDirectory()) continue;
    removeEmptyFolders(path, cutoff);
    if (changedAt(st) < cutoff && readdirSync(path).length === 0) rmSync(path, { recursive: true, force: true });
  }
}

/**
 * The oldest time a removable file may have last changed: before the grace period and before the
 * oldest running job started. A job whose process on this host has exited (a crash) holds nothing
 * back. File and object times come from a coarse clock (a tick behind Date.now(), or whole
 * seconds): a file a job wrote just after it started may look older, hence the slack.
 */
function cutoffOf(ws: Workspace, graceMs: number): number {
  const running = (ws.db.prepare("SELECT created_at, host, pid FROM jobs WHERE status IN ('running', 'queued')").all() as Array<{ created_at: string; host: string | null; pid: number | null }>).filter(
    (j) => j.host !== hostname() || j.pid === null || isAlive(j.pid),
  );
  return Math.min(Date.now() - graceMs, ...running.map((j) => Date.parse(j.created_at) - TIMESTAMP_SLACK_MS));
}

/**
 * `kennel gc` for whichever store the workspace uses: collectGarbage for the workspace folder and,
 * with an S3 store, the same rules applied to the bucket: objects under the prefix that nothing
 * references and that last changed (LastModified; a writer reusing an old blob renews it) before
 * the cutoff are deleted, after a second look at their LastModified. Deletes (dataset, model,
 * backbone) free a bucket's objects only through this, at the next `kennel gc`.
 */
export async function collectStoreGarbage(ws: Workspace, opts: CollectOptions): Promise<CollectReport> {
  const report = collectGarbage(ws, opts);
  const store = ws.artifacts;
  if (!(store instanceof S3ArtifactStore)) return report;
  const cutoff = cutoffOf(ws, report.graceMs);
  const listed = new Map<string, { bytes: number; lastModified: number }>();
  for await (const blob of store.list()) listed.set(blob.sha, blob);
  const refs = await remoteReferences(ws, store, listed);
  const doomed: Array<{ sha: string; bytes: number }> = [];
  for (const [sha, blob] of listed) {
    if (refs.has(sha)) report.kept.referenced++;
    else if (blob.lastModified >= cutoff) report.kept.recent++;
    else doomed.push({ sha, bytes: blob.bytes });
  }
  const items = doomed.map((d) => ({ path: `${store.url}/${store.keyOf(d.sha).slice(store.prefix.length)}`, kind: 'artifact' as const, bytes: d.bytes }));
  if (opts.apply) {
    const gone: string[] = [];
    // checked again: a writer may have reused (and so touched) the blob since the listing
    for (const d of doomed) {
      const modified = await store.lastModified(d.sha);
      if (modified !== undefined && modified < cutoff) gone.push(d.sha);
    }
    await store.delete(gone);
  }
  report.items.push(...items);
  report.bytes += items.reduce((n, i) => n + i.bytes, 0);
  return report;
}
