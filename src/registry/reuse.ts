import { findJobs, type Job, type Workspace } from '../store/index.js';
import { getModel, type ModelVersion } from './service.js';

/** Options that change how a training runs, not what it produces (features are bit-identical however extraction is spread). */
const NOT_IDENTITY = new Set(['instances', 'queue', 'newVersion']);

const identity = (params: Record<string, unknown>): string =>
  JSON.stringify(
    Object.keys(params)
      .filter((k) => !NOT_IDENTITY.has(k) && params[k] !== undefined)
      .sort()
      .map((k) => [k, params[k]]),
  );

/**
 * The model version an identical earlier training registered: a completed training job with the
 * same resolved options (data version, backbone, head settings, seed, model name), whose version
 * still exists and was trained on the same dataset manifest and backbone bytes. Training is
 * deterministic for a seed, so training again would only register a copy.
 */
export function identicalTraining(ws: Workspace, params: Record<string, unknown> & { dataset: string }, inputs: { manifestSha: string; backboneSha: string }): { job: Job; model: ModelVersion } | undefined {
  const wanted = identity(params);
  for (const job of findJobs(ws, { kind: 'train', status: 'completed', dataset: params.dataset, newestFirst: true })) {
    if (identity(job.params as Record<string, unknown>) !== wanted) continue;
    const ref = (job.result as { model?: string } | undefined)?.model;
    let model: ModelVersion;
    try {
      model = getModel(ws, ref ?? '');
    } catch {
      continue; // deleted since
    }
    const lineage = model.card.lineage as { job?: string; dataset?: { manifestSha?: string }; backbone?: { modelSha?: string } } | undefined;
    if (lineage?.job === job.id && lineage.dataset?.manifestSha === inputs.manifestSha && lineage.backbone?.modelSha === inputs.backboneSha) return { job, model };
  }
  return undefined;
}
