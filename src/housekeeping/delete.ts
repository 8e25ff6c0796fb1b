import { deleteBackbone as deleteBackboneRow, getBackbone } from '../backbones/index.js';
import { notFound, Errors } from '../core/index.js';
import { deleteDatasetVersions, listVersions, parseDatasetRef } from '../data/index.js';
import { deleteModelVersions, getModel, listModels, parseModelRef, type ModelVersion } from '../registry/index.js';
import { listEndpoints } from '../serving/index.js';
import { collectGarbage, findJobs, type CollectReport, type Workspace } from '../store/index.js';

export interface Deleted {
  /** what was deleted, e.g. dogs@2 */
  deleted: string[];
  /** what the collector freed, as kennel gc reports it */
  gc: CollectReport;
}

/** Tags that mark a version something depends on: deleting it needs --force. */
const PROTECTED_TAGS = ['production'];

/** Refuses while a training or tuning job that uses `what` is running. */
function refuseWhileRunning(ws: Workspace, what: string, uses: (params: Record<string, unknown>) => boolean): void {
  const busy = [...findJobs(ws, { status: 'running' }), ...findJobs(ws, { status: 'queued' })].find((j) => uses(j.params as Record<string, unknown>));
  if (busy) throw Errors.Conflict(`${what} is in use by ${busy.kind} job ${busy.id}, which is ${busy.status}.`, `Wait for it to finish, or cancel it: kennel jobs cancel ${busy.id}`);
}

/**
 * Deletes model versions: REF NAME@VERSION or NAME:TAG deletes that version, a bare NAME every
 * version. A version an endpoint serves or tagged production is refused unless `force`.
 */
export function deleteModel(ws: Workspace, ref: string, opts: { force?: boolean } = {}): Deleted {
  const { name, version, tag } = parseModelRef(ref);
  const versions: ModelVersion[] = version === undefined && tag === undefined ? listModels(ws).filter((m) => m.name === name) : [getModel(ws, ref)];
  if (versions.length === 0) getModel(ws, ref); // the registry's 404, with the known names
  const ids = versions.map((m) => `${m.name}@${m.version}`);
  if (!opts.force) {
    for (const e of listEndpoints(ws)) {
      const served = e.spec.variants.find((v) => ids.includes(v.model));
      if (served) throw Errors.Conflict(`Model ${served.model} is served by endpoint ${e.spec.name}.`, `Move the endpoint to another version (kennel endpoints update ${e.spec.name} --model ...) or delete it first, or pass --force.`);
    }
    const tagged = versions.find((m) => m.tags.some((t) => PROTECTED_TAGS.includes(t)));
    if (tagged) throw Errors.Conflict(`Model ${tagged.name}@${tagged.version} is tagged ${tagged.tags.filter((t) => PROTECTED_TAGS.includes(t)).join(', ')}.`, `Tag another version first (kennel models tag ${tagged.name}@N production), or pass --force.`);
  }
  const gc = collectGarbage(ws, { apply: true, release: () => deleteModelVersions(ws, name, versions.map((m) => m.version)) });
  return { deleted: ids, gc };
}

/** Deletes a dataset version (NAME@VERSION) or every version (NAME); models trained on it keep working. */
export function deleteDataset(ws: Workspace, ref: string): Deleted {
  const { name, version } = parseDatasetRef(ref);
  const all = listVersions(ws, name).map((v) => v.version);
  const versions = version === undefined ? all : all.filter((v) => v === version);
  if (versions.length === 0) throw notFound(version === undefined ? `dataset "${name}"` : `version ${version} of dataset "${name}"`, 'List datasets with kennel data list.');
  refuseWhileRunning(ws, `Dataset ${ref}`, (p) => p.dataset === name && (version === undefined || p.datasetVersion === version || p.datasetVersion === undefined));
  const gc = collectGarbage(ws, { apply: true, release: () => deleteDatasetVersions(ws, name, versions) });
  return { deleted: versions.map((v) => `${name}@${v}`), gc };
}

/** Deletes an installed backbone; models trained on it keep working (each is one self-contained graph). */
export function deleteBackbone(ws: Workspace, id: string): Deleted {
  getBackbone(ws, id); // 404 with the install hint
  refuseWhileRunning(ws, `Backbone ${id}`, (p) => p.backbone === id);
  const gc = collectGarbage(ws, { apply: true, release: () => deleteBackboneRow(ws, id) });
  return { deleted: [id], gc };
}
