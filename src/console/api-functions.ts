import { getFunction, listFunctions, updateFunction, type FunctionDefinition } from '../functions/index.js';
import { actorOf, callerOf, listPolicies, readAudit, type AuditRecord } from '../security/index.js';
import type { FunctionInvocation } from './api-types.js';
import { READ, nameParams, on, onAll, stream, type ConsoleContext, type RouteModule } from './context.js';

/** The window the function statistics cover. */
const STATS_WINDOW_MS = 3600_000;
const STATS_LIMIT = 10_000;
const RECENT = 50;

/** Invocations of one function over the last hour, from the audit log (every call through the gateway is recorded). */
function invocations(ctx: ConsoleContext, name: string, limit: number): AuditRecord[] {
  return readAudit(ctx.ws, { action: 'function:Invoke', resource: `function/${name}`, since: new Date(Date.now() - STATS_WINDOW_MS).toISOString(), limit });
}

function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function stats(records: AuditRecord[]) {
  const durations = records.map((r) => r.detail?.durationMs).filter((d): d is number => typeof d === 'number').sort((a, b) => a - b);
  return {
    windowMinutes: STATS_WINDOW_MS / 60_000,
    invocations: records.length,
    coldStarts: records.filter((r) => r.detail?.coldStart === true).length,
    throttles: records.filter((r) => r.status === 429).length,
    errors: records.filter((r) => r.status >= 400 && r.status !== 429).length,
    p50Ms: percentile(durations, 0.5),
    p99Ms: percentile(durations, 0.99),
  };
}

const withStats = (ctx: ConsoleContext, fn: FunctionDefinition) => ({ ...fn, stats: stats(invocations(ctx, fn.name, STATS_LIMIT)) });

function detail(ctx: ConsoleContext, name: string) {
  const fn = getFunction(ctx.ws, name);
  const records = invocations(ctx, name, STATS_LIMIT);
  return {
    function: { ...fn, stats: stats(records) },
    role: { principal: fn.role, policies: listPolicies(ctx.ws, fn.role) },
    recent: records.slice(0, RECENT).map(
      (r): FunctionInvocation => ({ ts: r.ts, status: r.status, principal: r.principal, keyId: r.keyId, coldStart: r.detail?.coldStart === true, durationMs: (r.detail?.durationMs as number | undefined) ?? r.latencyMs, requestId: r.requestId, ...(r.status >= 400 ? { error: typeof r.detail?.error === 'string' ? r.detail.error : undefined } : {}) }),
    ),
  };
}

const settingsBody = {
  type: 'object',
  properties: {
    reservedConcurrency: { type: ['integer', 'null'], minimum: 0, maximum: 10_000 },
    provisionedConcurrency: { type: 'integer', minimum: 0, maximum: 1000 },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 900_000 },
    memoryMb: { type: 'integer', minimum: 16, maximum: 65_536 },
  },
  additionalProperties: false,
} as const;

/** Functions: definitions with concurrency settings, invocation statistics (cold starts, throttles) and recent calls; settings changes. */
export const functionRoutes: RouteModule = (api, ctx) => {
  api.get('/api/functions', { config: { auth: onAll(READ, 'function') } }, async () => ({ functions: listFunctions(ctx.ws).map((fn) => withStats(ctx, fn)) }));
  api.get<{ Params: { name: string } }>('/api/functions/:name', { schema: { params: nameParams }, config: { auth: on(READ, 'function') } }, async (req) => detail(ctx, req.params.name));
  api.get<{ Params: { name: string } }>('/api/functions/:name/stream', { schema: { params: nameParams }, config: { auth: on(READ, 'function') } }, async (req, reply) => {
    getFunction(ctx.ws, req.params.name); // 404 before the stream starts
    stream(ctx, req, reply, 2000, () => detail(ctx, req.params.name));
  });
  // only concurrency, timeout and memory: a handler file is a path on the daemon's machine, set from the CLI
  api.patch<{ Params: { name: string }; Body: { reservedConcurrency?: number | null; provisionedConcurrency?: number; timeoutMs?: number; memoryMb?: number } }>(
    '/api/functions/:name',
    { schema: { params: nameParams, body: settingsBody }, config: { auth: on('admin:UpdateFunction', 'function') } },
    async (req) => updateFunction(ctx.ws, req.params.name, req.body, actorOf(callerOf(req))),
  );
};
