import { setTimeout as sleep } from 'node:timers/promises';
import { KennelError } from '../../src/core/errors.ts';
import { Authorizer, createKey, revokeKey, type Actor } from '../../src/security/index.ts';
import type { Workspace } from '../../src/store/index.ts';

/**
 * The authorization matrix: callers x (action, resource) -> HTTP status. It is table-driven so
 * the same table runs against the authorizer directly, against a fastify app secured by the
 * plugin, and against the daemon's real routes (write a `Check` that maps each action to the
 * route that needs it).
 */
export const CALLERS = ['reader', 'invoker', 'admin', 'full', 'expired', 'revoked', 'none', 'malformed', 'wrong-secret', 'unknown-id'] as const;
export type Caller = (typeof CALLERS)[number];

export const TARGETS = [
  ['endpoint:Invoke', 'endpoint/dogs'],
  ['endpoint:Invoke', 'endpoint/secret'],
  ['function:Invoke', 'function/classify'],
  ['function:Invoke', 'function/admin-tool'],
  ['model:Read', 'model/dogs'],
  ['admin:CreateKey', 'principal/someone'],
] as const;

// expected status for each caller, in TARGETS order
const EXPECTED: Record<Caller, number[]> = {
  reader: [403, 403, 200, 403, 200, 403],
  invoker: [200, 403, 200, 403, 403, 403], // function/admin-tool: explicit deny beats function/*
  admin: [403, 403, 403, 403, 403, 200],
  full: [200, 403, 200, 200, 200, 200], // *:* except the explicit deny on endpoint/secret
  expired: [401, 401, 401, 401, 401, 401],
  revoked: [401, 401, 401, 401, 401, 401],
  none: [401, 401, 401, 401, 401, 401],
  malformed: [401, 401, 401, 401, 401, 401],
  'wrong-secret': [401, 401, 401, 401, 401, 401],
  'unknown-id': [401, 401, 401, 401, 401, 401],
};

export interface MatrixCase {
  caller: Caller;
  action: string;
  resource: string;
  expected: number;
}

export const MATRIX: MatrixCase[] = CALLERS.flatMap((caller) => TARGETS.map(([action, resource], i) => ({ caller, action, resource, expected: EXPECTED[caller][i]! })));

const tester: Actor = { principal: 'local:test', plane: 'cli' };

/** Creates the matrix's principals; returns the key each caller presents (undefined: none). */
export async function setupMatrix(ws: Workspace): Promise<Record<Caller, string | undefined>> {
  const reader = createKey(ws, 'reader', { allow: ['function:Invoke:function/classify', 'model:Read:model/*'], expiresInMs: 3_600_000 }, tester);
  const invoker = createKey(ws, 'invoker', { allow: ['endpoint:Invoke:endpoint/dogs', 'function:Invoke:function/*'], deny: ['function:Invoke:function/admin-tool'], expiresInMs: 3_600_000 }, tester);
  const admin = createKey(ws, 'admin', { allow: ['admin:*:*'], expiresInMs: 3_600_000 }, tester);
  const full = createKey(ws, 'full', { allow: ['*:*'], deny: ['endpoint:Invoke:endpoint/secret'] }, tester);
  const expired = createKey(ws, 'temp', { allow: ['*:*'], expiresInMs: 1 }, tester);
  const revoked = createKey(ws, 'gone', { allow: ['*:*'] }, tester);
  revokeKey(ws, revoked.keyId, tester);
  await sleep(5); // let the 1 ms key expire
  return {
    reader: reader.key,
    invoker: invoker.key,
    admin: admin.key,
    full: full.key,
    expired: expired.key,
    revoked: revoked.key,
    none: undefined,
    malformed: 'not-a-kennel-key',
    'wrong-secret': `${full.key.slice(0, 20)}${'A'.repeat(full.key.length - 20)}`,
    'unknown-id': `kn_0123456789abcdef_${'B'.repeat(43)}`,
  };
}

/** Runs one case and returns the status it got. */
export type Check = (key: string | undefined, action: string, resource: string, variant: number) => Promise<number>;

/** The service-level check: the authorizer itself. */
export function authorizerCheck(ws: Workspace): Check {
  const authorizer = new Authorizer(ws);
  return async (key, action, resource, variant) => {
    const headers = key === undefined ? {} : variant % 2 ? { 'x-api-key': key } : { authorization: `Bearer ${key}` };
    try {
      authorizer.authorize(headers, action, resource);
      return 200;
    } catch (e) {
      if (e instanceof KennelError) return e.status;
      throw e;
    }
  };
}

/** Runs the whole matrix; returns the cases whose status differed. */
export async function runMatrix(keys: Record<Caller, string | undefined>, check: Check): Promise<Array<MatrixCase & { got: number }>> {
  const wrong: Array<MatrixCase & { got: number }> = [];
  let variant = 0;
  for (const c of MATRIX) {
    const got = await check(keys[c.caller], c.action, c.resource, variant++);
    if (got !== c.expected) wrong.push({ ...c, got });
  }
  return wrong;
}
