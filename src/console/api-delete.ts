import { deleteBackbone, deleteDataset, deleteJob, deleteModel, type Deleted } from '../housekeeping/index.js';
import { actorOf, audited, callerOf } from '../security/index.js';
import { nameParams, on, versionParams, type RouteModule } from './context.js';

/** `?force=1` (or true) passes force where the CLI has --force. */
const forceQuery = { type: 'object', properties: { force: { type: 'string', enum: ['1', '0', 'true', 'false'] } }, additionalProperties: false } as const;
const forced = (q: { force?: string }) => q.force === '1' || q.force === 'true';
const idParams = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['id'] } as const;

/** What the page shows after a delete: what went and what the collector freed. */
const answer = (r: Deleted) => ({ deleted: r.deleted, freed: { bytes: r.gc.bytes, files: r.gc.items.length } });

/**
 * Deletes from the console: the same housekeeping services (and guards) as kennel models / data /
 * backbones / jobs delete, each audited under its admin action. A guard's refusal is its 409.
 */
export const deleteRoutes: RouteModule = (api, ctx) => {
  api.delete<{ Params: { name: string; version: number }; Querystring: { force?: string } }>(
    '/api/models/:name/versions/:version',
    { schema: { params: versionParams, querystring: forceQuery }, config: { auth: on('admin:DeleteModel', 'model') } },
    async (req) => {
      const ref = `${req.params.name}@${req.params.version}`;
      const force = forced(req.query);
      return answer(audited(ctx.ws, actorOf(callerOf(req)), 'admin:DeleteModel', `model/${req.params.name}`, () => deleteModel(ctx.ws, ref, { force }), (r) => ({ deleted: r.deleted, force, freedBytes: r.gc.bytes })));
    },
  );

  const dataset = (ref: string, name: string, req: Parameters<typeof callerOf>[0]) =>
    answer(audited(ctx.ws, actorOf(callerOf(req)), 'admin:DeleteDataset', `dataset/${name}`, () => deleteDataset(ctx.ws, ref), (r) => ({ deleted: r.deleted, freedBytes: r.gc.bytes })));
  api.delete<{ Params: { name: string; version: number } }>('/api/datasets/:name/versions/:version', { schema: { params: versionParams }, config: { auth: on('admin:DeleteDataset', 'dataset') } }, async (req) =>
    dataset(`${req.params.name}@${req.params.version}`, req.params.name, req),
  );
  api.delete<{ Params: { name: string } }>('/api/datasets/:name', { schema: { params: nameParams }, config: { auth: on('admin:DeleteDataset', 'dataset') } }, async (req) => dataset(req.params.name, req.params.name, req));

  api.delete<{ Params: { id: string } }>('/api/backbones/:id', { schema: { params: idParams }, config: { auth: on('admin:DeleteBackbone', 'backbone', 'id') } }, async (req) =>
    answer(audited(ctx.ws, actorOf(callerOf(req)), 'admin:DeleteBackbone', `backbone/${req.params.id}`, () => deleteBackbone(ctx.ws, req.params.id), (r) => ({ deleted: r.deleted, freedBytes: r.gc.bytes }))),
  );

  api.delete<{ Params: { id: string } }>('/api/jobs/:id', { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[a-z]+-[0-9]{14}-[0-9a-f]{6}$' } }, required: ['id'] } }, config: { auth: on('admin:DeleteJob', 'job', 'id') } }, async (req) => {
    const r = audited(ctx.ws, actorOf(callerOf(req)), 'admin:DeleteJob', `job/${req.params.id}`, () => deleteJob(ctx.ws, req.params.id), (x) => ({ freedBytes: x.gc.bytes }));
    return answer({ deleted: [r.deleted], gc: r.gc });
  });
};
