import { Errors, KennelError } from '../core/index.js';
import {
  actorOf,
  attachPolicy,
  callerOf,
  createKey,
  detachPolicy,
  getKey,
  listKeys,
  listPolicies,
  listPrincipals,
  parseDuration,
  parsePolicyDocument,
  policyFromGrants,
  readAudit,
  revokeKey,
  runSecurityAudit,
  type Plane,
} from '../security/index.js';
import { READ, on, type RouteModule } from './context.js';

const grants = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 300 }, maxItems: 50 } as const;
const PLANES: Plane[] = ['cli', 'admin', 'data', 'function'];

/**
 * Security: principals with their keys and policies; key creation (the key is in that one
 * response and never again) and revocation; attaching and detaching policies; the security audit
 * with fix commands; the audit log with filters. Changes go through the security services, which
 * record them in the audit log as this caller.
 */
export const securityRoutes: RouteModule = (api, ctx) => {
  api.get('/api/security/principals', { config: { auth: { action: READ, resource: () => 'principal/*' } } }, async () => {
    const keys = listKeys(ctx.ws);
    const policies = listPolicies(ctx.ws);
    return {
      principals: listPrincipals(ctx.ws).map((p) => ({ ...p, keys: keys.filter((k) => k.principal === p.name), policies: policies.filter((x) => x.principal === p.name) })),
    };
  });

  api.post<{ Body: { principal: string; kind?: 'user' | 'service'; allow?: string[]; deny?: string[]; expires?: string } }>(
    '/api/security/keys',
    {
      schema: {
        body: {
          type: 'object',
          properties: { principal: { type: 'string', minLength: 1, maxLength: 64 }, kind: { type: 'string', enum: ['user', 'service'] }, allow: grants, deny: grants, expires: { type: 'string', maxLength: 16 } },
          required: ['principal'],
          additionalProperties: false,
        },
      },
      config: { auth: { action: 'admin:CreateKey', resource: (req) => `principal/${(req.body as { principal?: string } | null)?.principal ?? ''}` } },
    },
    async (req, reply) => {
      const b = req.body;
      const created = createKey(ctx.ws, b.principal, { kind: b.kind, allow: b.allow, deny: b.deny, expiresInMs: b.expires ? parseDuration(b.expires, 'expires') : undefined }, actorOf(callerOf(req)));
      reply.code(201);
      return created;
    },
  );

  api.post<{ Params: { id: string } }>(
    '/api/security/keys/:id/revoke',
    { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$' } }, required: ['id'] } }, config: { auth: on('admin:RevokeKey', 'key', 'id') } },
    async (req) => {
      const key = revokeKey(ctx.ws, req.params.id, actorOf(callerOf(req)));
      ctx.auth.endSessionsOfKey(key.keyId);
      return key;
    },
  );

  api.get<{ Params: { id: string } }>('/api/security/keys/:id', { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9a-f]{16}$' } }, required: ['id'] } }, config: { auth: on(READ, 'key', 'id') } }, async (req) =>
    getKey(ctx.ws, req.params.id),
  );

  api.post<{ Body: { principal: string; allow?: string[]; deny?: string[]; document?: unknown } }>(
    '/api/security/policies',
    {
      schema: { body: { type: 'object', properties: { principal: { type: 'string', minLength: 1, maxLength: 80 }, allow: grants, deny: grants, document: { type: 'object' } }, required: ['principal'], additionalProperties: false } },
      config: { auth: { action: 'admin:AttachPolicy', resource: (req) => `principal/${(req.body as { principal?: string } | null)?.principal ?? ''}` } },
    },
    async (req, reply) => {
      const b = req.body;
      if (b.document !== undefined && (b.allow?.length || b.deny?.length)) throw Errors.InvalidRequest('Give either a policy document or allow/deny grants, not both.');
      const document = b.document !== undefined ? parsePolicyDocument(b.document) : policyFromGrants(b.allow ?? [], b.deny ?? []);
      if (document.statements.length === 0) throw Errors.InvalidRequest('The policy has no statements.', 'Add at least one allow or deny grant, e.g. endpoint:Invoke:endpoint/dogs.');
      reply.code(201);
      return attachPolicy(ctx.ws, b.principal, document, actorOf(callerOf(req)));
    },
  );

  api.delete<{ Params: { principal: string; id: string } }>(
    '/api/security/principals/:principal/policies/:id',
    {
      schema: { params: { type: 'object', properties: { principal: { type: 'string', minLength: 1, maxLength: 80 }, id: { type: 'string', pattern: '^pol_[0-9a-f]{12}$' } }, required: ['principal', 'id'] } },
      config: { auth: on('admin:DetachPolicy', 'principal', 'principal') },
    },
    async (req) => detachPolicy(ctx.ws, req.params.principal, req.params.id, actorOf(callerOf(req))),
  );

  api.get('/api/security/findings', { config: { auth: { action: READ, resource: () => 'settings/security-audit' } } }, async () => runSecurityAudit(ctx.ws));

  api.get<{ Querystring: { principal?: string; plane?: Plane; action?: string; resource?: string; failed?: boolean; limit?: number } }>(
    '/api/security/log',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            principal: { type: 'string', maxLength: 80 },
            plane: { type: 'string', enum: PLANES },
            action: { type: 'string', maxLength: 80 },
            resource: { type: 'string', maxLength: 200 },
            failed: { type: 'boolean' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
          },
          additionalProperties: false,
        },
      },
      config: { auth: { action: READ, resource: () => 'settings/audit-log' } },
    },
    async (req) => ({ entries: readAudit(ctx.ws, req.query) }),
  );
};
