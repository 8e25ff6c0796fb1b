import { Errors, KennelError, notFound } from '../core/index.js';
import { attachPolicyRow, audited, ensurePrincipal, type Actor, type PolicyDocument } from '../security/index.js';
import { now, type Workspace } from '../store/index.js';
import { bundleHandler } from './package.js';

export const BUILTIN_CLASSIFY = 'builtin:classify';
/** HTTP API routes (--route) live under this prefix on the data plane. */
export const HTTP_API_PREFIX = '/v1/';

export interface FunctionDefinition {
  name: string;
  endpoint: string;
  /** builtin:classify, or module (a bundled user handler) */
  handler: string;
  handlerSha?: string;
  handlerSource?: string;
  /** the execution role: principal role/NAME */
  role: string;
  /** the most concurrent executions; undefined: the gateway's unreserved limit */
  reservedConcurrency?: number;
  provisionedConcurrency: number;
  timeoutMs: number;
  memoryMb: number;
  route?: string;
  /** asynchronous invocations older than this go to the failure list (Lambda's MaximumEventAgeInSeconds) */
  maxEventAgeSeconds: number;
  /** runs after the first that failed, before an event goes to the failure list (MaximumRetryAttempts) */
  maxRetries: number;
  revision: number;
  createdAt: string;
  updatedAt: string;
}

export interface FunctionSettings {
  endpoint?: string;
  /** a .ts/.js file exporting handler(event, context); default: the built-in classify handler */
  handler?: string;
  /** null removes the reservation */
  reservedConcurrency?: number | null;
  provisionedConcurrency?: number;
  timeoutMs?: number;
  memoryMb?: number;
  /** null removes the HTTP API route */
  route?: string | null;
  maxEventAgeSeconds?: number;
  maxRetries?: number;
}

/** maxEventAgeSeconds and maxRetries are Lambda's defaults for asynchronous invocations (6 h, 2) */
export const FUNCTION_DEFAULTS = { timeoutMs: 10_000, memoryMb: 256, provisionedConcurrency: 0, maxEventAgeSeconds: 21_600, maxRetries: 2 } as const;

const NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const ENDPOINT = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ROUTE = /^\/v1\/[a-z0-9][a-z0-9/_-]{0,127}$/;

interface Row {
  name: string;
  endpoint: string;
  handler: string;
  handler_sha: string | null;
  handler_source: string | null;
  role: string;
  reserved_concurrency: number | null;
  provisioned_concurrency: number;
  timeout_ms: number;
  memory_mb: number;
  route: string | null;
  max_event_age_s: number;
  max_retries: number;
  revision: number;
  created_at: string;
  updated_at: string;
}

const fromRow = (r: Row): FunctionDefinition => ({
  name: r.name,
  endpoint: r.endpoint,
  handler: r.handler,
  handlerSha: r.handler_sha ?? undefined,
  handlerSource: r.handler_source ?? undefined,
  role: r.role,
  reservedConcurrency: r.reserved_concurrency ?? undefined,
  provisionedConcurrency: r.provisioned_concurrency,
  timeoutMs: r.timeout_ms,
  memoryMb: r.memory_mb,
  route: r.route ?? undefined,
  maxEventAgeSeconds: r.max_event_age_s,
  maxRetries: r.max_retries,
  revision: r.revision,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const roleOf = (name: string): string => `role/${name}`;

/** Exactly what a function needs: endpoint:Invoke on its own endpoint, nothing else. */
export const leastPrivilege = (endpoint: string): PolicyDocument => ({ statements: [{ effect: 'allow', actions: ['endpoint:Invoke'], resources: [`endpoint/${endpoint}`] }] });

function validate(s: FunctionSettings & { endpoint: string }, current?: FunctionDefinition): void {
  if (!ENDPOINT.test(s.endpoint)) throw Errors.InvalidRequest(`"${s.endpoint}" is not a valid endpoint name.`);
  const reserved = s.reservedConcurrency === undefined ? current?.reservedConcurrency : (s.reservedConcurrency ?? undefined);
  const provisioned = s.provisionedConcurrency ?? current?.provisionedConcurrency ?? 0;
  if (reserved !== undefined && (!Number.isInteger(reserved) || reserved < 0 || reserved > 1000)) throw Errors.InvalidRequest('--reserved-concurrency must be a whole number from 0 to 1000.');
  if (!Number.isInteger(provisioned) || provisioned < 0 || provisioned > 100) throw Errors.InvalidRequest('--provisioned-concurrency must be a whole number from 0 to 100.');
  if (reserved !== undefined && provisioned > reserved) {
    throw Errors.InvalidRequest(`Provisioned concurrency (${provisioned}) cannot exceed reserved concurrency (${reserved}).`, 'Warm instances beyond the limit could never run; lower --provisioned-concurrency or raise --reserved-concurrency.');
  }
  if (s.timeoutMs !== undefined && (s.timeoutMs < 100 || s.timeoutMs > 900_000)) throw Errors.InvalidRequest('--timeout must be between 100ms and 15m.');
  if (s.memoryMb !== undefined && (!Number.isInteger(s.memoryMb) || s.memoryMb < 64 || s.memoryMb > 8192)) throw Errors.InvalidRequest('--memory must be between 64MB and 8192MB.');
  if (s.maxEventAgeSeconds !== undefined && (!Number.isInteger(s.maxEventAgeSeconds) || s.maxEventAgeSeconds < 1 || s.maxEventAgeSeconds > 21_600)) throw Errors.InvalidRequest('--max-event-age must be between 1s and 6h.');
  if (s.maxRetries !== undefined && (!Number.isInteger(s.maxRetries) || s.maxRetries < 0 || s.maxRetries > 2)) throw Errors.InvalidRequest('--max-retries must be 0, 1 or 2.', 'As on Lambda: an event runs at most 3 times.');
  if (s.route && !ROUTE.test(s.route)) throw Errors.InvalidRequest(`"${s.route}" is not a valid route.`, `Routes start with ${HTTP_API_PREFIX} and use lowercase letters, digits, "/", "_" and "-", e.g. /v1/classify.`);
}

function routeTaken(ws: Workspace, route: string, name: string): void {
  const other = ws.db.prepare('SELECT name FROM functions WHERE route = ? AND name != ?').get(route, name) as { name: string } | undefined;
  if (other) throw Errors.InvalidRequest(`The route ${route} already belongs to function ${other.name}.`, 'Pick another --route, or remove it from that function first.');
}

async function packageHandler(ws: Workspace, file: string | undefined): Promise<{ handler: string; sha: string | null; source: string | null }> {
  if (!file || file === BUILTIN_CLASSIFY || file === 'classify') return { handler: BUILTIN_CLASSIFY, sha: null, source: null };
  return { handler: 'module', sha: await ws.artifacts.put(await bundleHandler(file)), source: file };
}

/**
 * Creates a function with its execution role (principal role/NAME) holding exactly one managed
 * policy: endpoint:Invoke on its endpoint. Returns warnings (e.g. the endpoint does not exist yet),
 * or with `requireEndpoint` refuses a missing endpoint.
 */
export async function createFunction(ws: Workspace, name: string, s: FunctionSettings & { endpoint: string; requireEndpoint?: boolean }, by: Actor): Promise<{ fn: FunctionDefinition; warnings: string[] }> {
  if (!NAME.test(name)) throw Errors.InvalidRequest(`"${name}" is not a valid function name.`, 'Use 1-64 lowercase letters, digits or "-", starting with a letter or digit.');
  validate(s);
  if (s.requireEndpoint && endpointWarnings(ws, s.endpoint).length) {
    throw Errors.NotFound(`Endpoint ${s.endpoint} does not exist.`, `Create it first (kennel endpoints create ${s.endpoint} --model MODEL), or pass --allow-missing-endpoint to create the function before its endpoint.`);
  }
  if (getFunctionRow(ws, name)) throw Errors.InvalidRequest(`Function ${name} already exists.`, `Change it with kennel functions update ${name}.`);
  const pkg = await packageHandler(ws, s.handler);
  const fn = audited(
    ws,
    by,
    'admin:CreateFunction',
    `function/${name}`,
    () =>
      ws.db.transaction(() => {
        if (s.route) routeTaken(ws, s.route, name);
        const role = roleOf(name);
        ensurePrincipal(ws, role, 'role');
        ws.db.prepare('DELETE FROM policies WHERE principal = ?').run(role); // a stale role from a deleted function
        attachPolicyRow(ws, role, leastPrivilege(s.endpoint), `function:${name}`);
        const t = now();
        ws.db
          .prepare(
            `INSERT INTO functions (name, endpoint, handler, handler_sha, handler_source, role, reserved_concurrency, provisioned_concurrency, timeout_ms, memory_mb, route, max_event_age_s, max_retries, revision, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
          )
          .run(
            name, s.endpoint, pkg.handler, pkg.sha, pkg.source, role, s.reservedConcurrency ?? null, s.provisionedConcurrency ?? FUNCTION_DEFAULTS.provisionedConcurrency, s.timeoutMs ?? FUNCTION_DEFAULTS.timeoutMs, s.memoryMb ?? FUNCTION_DEFAULTS.memoryMb, s.route ?? null,
            s.maxEventAgeSeconds ?? FUNCTION_DEFAULTS.maxEventAgeSeconds, s.maxRetries ?? FUNCTION_DEFAULTS.maxRetries, t, t,
          );
        return getFunction(ws, name);
      })(),
    (f) => ({ endpoint: f.endpoint, handler: f.handler, handlerSha: f.handlerSha, route: f.route }),
  );
  return { fn, warnings: endpointWarnings(ws, fn.endpoint) };
}

/**
 * Changes a function. A new --endpoint, or --reset-role, replaces every policy of the execution
 * role with the least-privilege one (the fix the security audit suggests for broadened roles).
 */
export async function updateFunction(ws: Workspace, name: string, s: FunctionSettings & { resetRole?: boolean }, by: Actor): Promise<{ fn: FunctionDefinition; warnings: string[] }> {
  const current = getFunction(ws, name);
  const endpoint = s.endpoint ?? current.endpoint;
  validate({ ...s, endpoint }, current);
  const pkg = s.handler === undefined ? undefined : await packageHandler(ws, s.handler);
  const fn = audited(
    ws,
    by,
    'admin:UpdateFunction',
    `function/${name}`,
    () =>
      ws.db.transaction(() => {
        if (s.route) routeTaken(ws, s.route, name);
        const set = (column: string, value: unknown) => ws.db.prepare(`UPDATE functions SET ${column} = ? WHERE name = ?`).run(value, name);
        if (s.endpoint !== undefined) set('endpoint', s.endpoint);
        if (pkg) {
          set('handler', pkg.handler);
          set('handler_sha', pkg.sha);
          set('handler_source', pkg.source);
        }
        if (s.reservedConcurrency !== undefined) set('reserved_concurrency', s.reservedConcurrency);
        if (s.provisionedConcurrency !== undefined) set('provisioned_concurrency', s.provisionedConcurrency);
        if (s.timeoutMs !== undefined) set('timeout_ms', s.timeoutMs);
        if (s.memoryMb !== undefined) set('memory_mb', s.memoryMb);
        if (s.route !== undefined) set('route', s.route);
        if (s.maxEventAgeSeconds !== undefined) set('max_event_age_s', s.maxEventAgeSeconds);
        if (s.maxRetries !== undefined) set('max_retries', s.maxRetries);
        if (s.resetRole || (s.endpoint !== undefined && s.endpoint !== current.endpoint)) {
          ws.db.prepare('DELETE FROM policies WHERE principal = ?').run(current.role);
          attachPolicyRow(ws, current.role, leastPrivilege(endpoint), `function:${name}`);
        }
        ws.db.prepare('UPDATE functions SET revision = revision + 1, updated_at = ? WHERE name = ?').run(now(), name);
        return getFunction(ws, name);
      })(),
    (f) => ({ revision: f.revision, resetRole: Boolean(s.resetRole), endpoint: f.endpoint }),
  );
  return { fn, warnings: endpointWarnings(ws, fn.endpoint) };
}

export function deleteFunction(ws: Workspace, name: string, by: Actor): FunctionDefinition {
  return audited(ws, by, 'admin:DeleteFunction', `function/${name}`, () =>
    ws.db.transaction(() => {
      const fn = getFunction(ws, name);
      ws.db.prepare('DELETE FROM functions WHERE name = ?').run(name);
      ws.db.prepare('DELETE FROM principals WHERE name = ?').run(fn.role); // its policies go with it
      return fn;
    })(),
  );
}

function getFunctionRow(ws: Workspace, name: string): Row | undefined {
  return ws.db.prepare('SELECT * FROM functions WHERE name = ?').get(name) as Row | undefined;
}

export function getFunction(ws: Workspace, name: string): FunctionDefinition {
  const r = getFunctionRow(ws, name);
  if (!r) throw notFound(`Function ${name}`, 'kennel functions list shows the functions.');
  return fromRow(r);
}

export function findFunction(ws: Workspace, name: string): FunctionDefinition | undefined {
  const r = getFunctionRow(ws, name);
  return r && fromRow(r);
}

export function listFunctions(ws: Workspace): FunctionDefinition[] {
  return (ws.db.prepare('SELECT * FROM functions ORDER BY name').all() as Row[]).map(fromRow);
}

export function functionForRoute(ws: Workspace, route: string): string | undefined {
  return (ws.db.prepare('SELECT name FROM functions WHERE route = ?').get(route) as { name: string } | undefined)?.name;
}

// Endpoints belong to the serving area; a function may be created before its endpoint exists.
function endpointWarnings(ws: Workspace, endpoint: string): string[] {
  const exists = ws.db.prepare('SELECT 1 FROM endpoints WHERE name = ?').get(endpoint);
  return exists ? [] : [`Endpoint ${endpoint} does not exist yet; invocations fail with 404 until it does (kennel endpoints create ${endpoint} --model ...).`];
}
