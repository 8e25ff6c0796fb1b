import { Errors, KennelError, notFound } from '../core/index.js';
import { now, type Workspace } from '../store/index.js';
import type { DatasetSummary, ImportReport } from './types.js';

/** dataset_versions joined with its dataset's name, columns parsed. */
export interface VersionRecord {
  dataset: string;
  version: number;
  manifestSha: string;
  source: string;
  classes: string[];
  report: ImportReport;
  createdAt: string;
}

interface VersionRow {
  name: string;
  version: number;
  manifest_sha: string;
  source: string;
  classes: string;
  report: string;
  created_at: string;
}

const SELECT_VERSION = `
  SELECT d.name, v.version, v.manifest_sha, v.source, v.classes, v.report, v.created_at
  FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id`;

const fromRow = (r: VersionRow): VersionRecord => ({
  dataset: r.name,
  version: r.version,
  manifestSha: r.manifest_sha,
  source: r.source,
  classes: JSON.parse(r.classes) as string[],
  report: JSON.parse(r.report) as ImportReport,
  createdAt: r.created_at,
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function validateDatasetName(name: string): string {
  if (!NAME.test(name)) {
    throw Errors.InvalidRequest(`"${name}" is not a valid dataset name.`, 'Use up to 64 letters, digits, ".", "_" or "-", starting with a letter or digit (e.g. dogs).');
  }
  return name;
}

/** "dogs@2" → { name: "dogs", version: 2 }; "dogs" → latest. */
export function parseDatasetRef(ref: string): { name: string; version?: number } {
  const m = /^([^@]+)(?:@(\d+))?$/.exec(ref);
  if (!m) throw Errors.InvalidRequest(`"${ref}" is not a dataset reference.`, 'Write NAME for the latest version or NAME@VERSION, e.g. dogs@2.');
  return { name: m[1]!, version: m[2] === undefined ? undefined : Number(m[2]) };
}

/** The row of a version (the latest when `version` is omitted); a 404 KennelError with a helpful hint otherwise. */
export function findVersion(ws: Workspace, name: string, version?: number): VersionRecord {
  const row =
    version === undefined
      ? (ws.db.prepare(`${SELECT_VERSION} WHERE d.name = ? ORDER BY v.version DESC LIMIT 1`).get(name) as VersionRow | undefined)
      : (ws.db.prepare(`${SELECT_VERSION} WHERE d.name = ? AND v.version = ?`).get(name, version) as VersionRow | undefined);
  if (row) return fromRow(row);
  const versions = (ws.db.prepare(`SELECT v.version FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ? ORDER BY v.version`).all(name) as Array<{ version: number }>).map((r) => r.version);
  if (versions.length > 0) {
    throw notFound(`version ${version} of dataset "${name}"`, `It has version${versions.length > 1 ? 's' : ''} ${versions.join(', ')}.`);
  }
  const known = listDatasets(ws).map((d) => d.name);
  throw notFound(
    `dataset "${name}"`,
    known.length > 0 ? `Known datasets: ${known.join(', ')}.` : 'No dataset has been imported yet; run `kennel data import <folder|zip|url> --name NAME`.',
  );
}

/** Every version of a dataset (its rows, not its manifests), newest first; [] for an unknown name. */
export function listVersions(ws: Workspace, name: string): VersionRecord[] {
  return (ws.db.prepare(`${SELECT_VERSION} WHERE d.name = ? ORDER BY v.version DESC`).all(name) as VersionRow[]).map(fromRow);
}

/** Every dataset, by name, with its number of versions and the latest version's classes and image counts. */
export function listDatasets(ws: Workspace): DatasetSummary[] {
  const rows = ws.db
    .prepare(
      `SELECT d.name, COUNT(*) AS versions, MAX(v.version) AS latest,
         (SELECT classes FROM dataset_versions WHERE dataset_id = d.id ORDER BY version DESC LIMIT 1) AS classes,
         (SELECT report FROM dataset_versions WHERE dataset_id = d.id ORDER BY version DESC LIMIT 1) AS report
       FROM datasets d JOIN dataset_versions v ON v.dataset_id = d.id
       GROUP BY d.id ORDER BY d.name`,
    )
    .all() as Array<{ name: string; versions: number; latest: number; classes: string; report: string }>;
  return rows.map((r) => ({
    name: r.name,
    versions: r.versions,
    latest: r.latest,
    classes: (JSON.parse(r.classes) as string[]).length,
    images: (JSON.parse(r.report) as ImportReport).images,
  }));
}

/**
 * Records a version unless the latest one has the same manifest, in which case that one is
 * returned with `reused`. Runs as one IMMEDIATE transaction, so two imports racing for the same
 * name cannot both take the same version number.
 */
export function recordVersion(
  ws: Workspace,
  v: { dataset: string; manifestSha: string; source: string; classes: string[]; report: ImportReport },
): { record: VersionRecord; reused: boolean } {
  return ws.db
    .transaction(() => {
      const latest = ws.db.prepare(`${SELECT_VERSION} WHERE d.name = ? ORDER BY v.version DESC LIMIT 1`).get(v.dataset) as VersionRow | undefined;
      if (latest && latest.manifest_sha === v.manifestSha) return { record: fromRow(latest), reused: true };
      const createdAt = now();
      ws.db.prepare(`INSERT INTO datasets (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`).run(v.dataset, createdAt);
      const { id } = ws.db.prepare(`SELECT id FROM datasets WHERE name = ?`).get(v.dataset) as { id: number };
      const version = (latest?.version ?? 0) + 1;
      ws.db
        .prepare(`INSERT INTO dataset_versions (dataset_id, version, manifest_sha, source, classes, report, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
        .run(id, version, v.manifestSha, v.source, JSON.stringify(v.classes), JSON.stringify(v.report), createdAt);
      return { record: { ...v, version, createdAt }, reused: false };
    })
    .immediate();
}

/** Removes dataset versions (rows only: the collector frees manifests and images); a dataset with none left is removed. */
export function deleteDatasetVersions(ws: Workspace, name: string, versions: number[]): void {
  const dataset = ws.db.prepare('SELECT id FROM datasets WHERE name = ?').get(name) as { id: number } | undefined;
  if (!dataset) return;
  ws.db.transaction(() => {
    for (const v of versions) ws.db.prepare('DELETE FROM dataset_versions WHERE dataset_id = ? AND version = ?').run(dataset.id, v);
    const { left } = ws.db.prepare('SELECT COUNT(*) AS left FROM dataset_versions WHERE dataset_id = ?').get(dataset.id) as { left: number };
    if (left === 0) ws.db.prepare('DELETE FROM datasets WHERE id = ?').run(dataset.id);
  })();
}
