import sharp from 'sharp';
import { listBackbones } from '../backbones/index.js';
import { notFound } from '../core/error-codes.js';
import { getDatasetVersion, imagePath, listDatasets, listVersions, type DatasetVersion } from '../data/index.js';
import { getModel, listModels, tagModel, type ModelVersion } from '../registry/index.js';
import { audited, runSecurityAudit } from '../security/index.js';
import { listJobs, type Workspace } from '../store/index.js';
import { listFunctions } from '../functions/index.js';
import { actorOf } from './auth.js';
import { READ, callerOf, nameParams, on, onAll, versionParams, type RouteModule } from './context.js';

/** Sample images shown per class. */
const SAMPLES_PER_CLASS = 6;
const THUMB_PX = 160;
/** A class with fewer training images than this share of the largest class is flagged. */
const IMBALANCE_SHARE = 0.5;

/** Dataset versions are immutable: their manifests (thousands of items) are kept once read. */
class VersionCache {
  private readonly cache = new Map<string, DatasetVersion>();
  constructor(private readonly ws: Workspace) {}
  async get(name: string, version: number): Promise<DatasetVersion> {
    const key = `${name}@${version}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const v = await getDatasetVersion(this.ws, name, version);
    this.cache.set(key, v);
    if (this.cache.size > 16) this.cache.delete(this.cache.keys().next().value!);
    return v;
  }
}

/** What the page warns about: classes without training images, or far below the largest class. */
function imbalanceOf(v: DatasetVersion): { warning: string | null; small: string[] } {
  const counts = v.report.classCounts.train;
  const max = Math.max(0, ...counts);
  const empty = v.classes.filter((_, i) => (counts[i] ?? 0) === 0);
  if (empty.length) return { warning: `${empty.length} ${empty.length === 1 ? 'class has' : 'classes have'} no training images.`, small: empty };
  const small = v.classes.filter((_, i) => (counts[i] ?? 0) < max * IMBALANCE_SHARE);
  if (small.length) return { warning: `${small.length} ${small.length === 1 ? 'class has' : 'classes have'} fewer than half as many training images as the largest class (${max}); consider more images or augmentation (kennel train --augment).`, small };
  return { warning: null, small: [] };
}

const metricSummary = (mv: ModelVersion) => {
  const m = (mv.card.metrics ?? {}) as Record<string, { top1?: number; top5?: number; ece?: number } | undefined>;
  const pick = (s?: { top1?: number; top5?: number; ece?: number }) => (s ? { top1: s.top1, top5: s.top5, ece: s.ece } : undefined);
  return { valid: pick(m.valid), test: pick(m.test) };
};

/** Datasets, models and backbones, and the overview. */
export const dataRoutes: RouteModule = (api, ctx) => {
  const versions = new VersionCache(ctx.ws);

  api.get('/api/overview', { config: { console: { action: READ, resource: () => 'console/overview' } } }, async () => {
    const jobs = listJobs(ctx.ws);
    const endpoints = ctx.runtime.list();
    const findings = runSecurityAudit(ctx.ws).findings;
    return {
      daemon: ctx.status(),
      dataPlane: ctx.dataPlaneUrl(),
      datasets: listDatasets(ctx.ws).length,
      models: new Set(listModels(ctx.ws).map((m) => m.name)).size,
      endpoints: { total: endpoints.length, inService: endpoints.filter((e) => e.status === 'in_service').length },
      functions: listFunctions(ctx.ws).length,
      jobs: { total: jobs.length, running: jobs.filter((j) => j.status === 'running').length, failed: jobs.filter((j) => j.status === 'failed').length },
      findings: { high: findings.filter((f) => f.severity === 'high').length, medium: findings.filter((f) => f.severity === 'medium').length, low: findings.filter((f) => f.severity === 'low').length },
    };
  });

  api.get('/api/datasets', { config: { console: onAll(READ, 'dataset') } }, async () => ({ datasets: listDatasets(ctx.ws) }));

  api.get<{ Params: { name: string } }>('/api/datasets/:name', { schema: { params: nameParams }, config: { console: on(READ, 'dataset') } }, async (req) => {
    const summary = listDatasets(ctx.ws).find((d) => d.name === req.params.name);
    if (!summary) throw notFound(`Dataset "${req.params.name}"`, 'Import one with kennel data import FOLDER --name NAME.');
    return {
      ...summary,
      // from the versions' rows: their manifests (every item) are not needed for the list
      versions: listVersions(ctx.ws, summary.name).map((v) => ({ version: v.version, createdAt: v.createdAt, source: v.source, classes: v.classes.length, images: v.report.images, skipped: v.report.skipped.length, duplicates: v.report.duplicates.length, imbalanceRatio: v.report.imbalance.ratio })),
    };
  });

  api.get<{ Params: { name: string; version: number } }>('/api/datasets/:name/versions/:version', { schema: { params: versionParams }, config: { console: on(READ, 'dataset') } }, async (req) => {
    const v = await versions.get(req.params.name, req.params.version);
    const samples: Array<Array<{ sha: string; split: string; path: string }>> = v.classes.map(() => []);
    for (const split of ['train', 'valid', 'test'] as const) {
      for (const item of v.items) {
        const list = samples[item.label];
        if (item.split === split && list && list.length < SAMPLES_PER_CLASS) list.push({ sha: item.sha256, split: item.split, path: item.path });
      }
    }
    return { dataset: v.dataset, version: v.version, createdAt: v.createdAt, source: v.source, manifestSha: v.manifestSha, classes: v.classes, report: v.report, imbalance: imbalanceOf(v), samples };
  });

  api.get<{ Params: { name: string; version: number; sha: string } }>(
    '/api/datasets/:name/versions/:version/images/:sha',
    {
      schema: { params: { type: 'object', properties: { ...versionParams.properties, sha: { type: 'string', pattern: '^[0-9a-f]{64}$' } }, required: ['name', 'version', 'sha'] } },
      config: { console: on(READ, 'dataset') },
    },
    async (req, reply) => {
      const v = await versions.get(req.params.name, req.params.version);
      // only images of this version: the route must not read arbitrary artifacts
      const item = v.items.find((i) => i.sha256 === req.params.sha);
      if (!item) throw notFound(`Image ${req.params.sha.slice(0, 12)} in ${v.dataset}@${v.version}`);
      const jpeg = await sharp(await imagePath(ctx.ws, item), { failOn: 'none' }).rotate().resize(THUMB_PX, THUMB_PX, { fit: 'cover' }).jpeg({ quality: 78 }).toBuffer();
      // the URL names the content, so it never changes
      return reply.type('image/jpeg').header('cache-control', 'private, max-age=86400, immutable').send(jpeg);
    },
  );

  api.get('/api/backbones', { config: { console: onAll(READ, 'backbone') } }, async () => ({ backbones: listBackbones(ctx.ws) }));

  api.get('/api/models', { config: { console: onAll(READ, 'model') } }, async () => {
    const byName = new Map<string, unknown[]>();
    for (const mv of listModels(ctx.ws)) {
      const lineage = (mv.card.lineage ?? {}) as { job?: string; dataset?: { name?: string; version?: number } };
      const row = { version: mv.version, tags: mv.tags, createdAt: mv.createdAt, source: mv.card.source, classes: mv.card.labels.length, metrics: metricSummary(mv), job: lineage.job, dataset: lineage.dataset ? `${lineage.dataset.name}@${lineage.dataset.version}` : undefined };
      byName.set(mv.name, [...(byName.get(mv.name) ?? []), row]);
    }
    return { models: [...byName].map(([name, vs]) => ({ name, versions: vs.reverse() })) };
  });

  api.get<{ Params: { name: string; version: number } }>('/api/models/:name/versions/:version', { schema: { params: versionParams }, config: { console: on(READ, 'model') } }, async (req) => {
    const mv = getModel(ctx.ws, `${req.params.name}@${req.params.version}`);
    const ref = `${mv.name}@${mv.version}`;
    const servedBy = ctx.runtime.list().flatMap((e) => e.variants.filter((v) => v.model === ref).map((v) => ({ endpoint: e.name, variant: v.name, traffic: v.traffic })));
    return { ...mv, servedBy };
  });

  api.post<{ Params: { name: string }; Body: { tag: string; version: number } }>(
    '/api/models/:name/tags',
    {
      schema: { params: nameParams, body: { type: 'object', properties: { tag: { type: 'string', minLength: 1, maxLength: 32 }, version: { type: 'integer', minimum: 1 } }, required: ['tag', 'version'], additionalProperties: false } },
      config: { console: on('admin:TagModel', 'model') },
    },
    async (req) => {
      const { name } = req.params;
      const { tag, version } = req.body;
      const previous = (() => {
        try {
          return getModel(ctx.ws, `${name}:${tag}`).version;
        } catch {
          return null;
        }
      })();
      const mv = audited(ctx.ws, actorOf(callerOf(req)), 'admin:TagModel', `model/${name}`, () => tagModel(ctx.ws, `${name}@${version}`, tag), () => ({ tag, version, previous }));
      return { model: mv, tag, previous };
    },
  );
};
