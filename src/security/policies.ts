import { randomBytes } from 'node:crypto';
import { Errors, KennelError, notFound } from '../core/index.js';
import { now, type Workspace } from '../store/index.js';
import { audited, type Actor } from './audit-log.js';
import { assertDelegable } from './delegation.js';
import { ANONYMOUS, ensurePrincipal, getPrincipal } from './principals.js';
import { parsePolicyDocument, type PolicyDocument } from './policy.js';

export interface AttachedPolicy {
  id: string;
  principal: string;
  document: PolicyDocument;
  /** function:NAME when the policy is a function's own execution-role policy */
  managedBy?: string;
  createdAt: string;
}

interface Row {
  id: string;
  principal: string;
  document: string;
  managed_by: string | null;
  created_at: string;
}

const fromRow = (r: Row): AttachedPolicy => ({ id: r.id, principal: r.principal, document: JSON.parse(r.document), managedBy: r.managed_by ?? undefined, createdAt: r.created_at });

/** Inserts a policy row (callers run it inside their own audited transaction). */
export function attachPolicyRow(ws: Workspace, principal: string, document: PolicyDocument, managedBy?: string): string {
  const id = `pol_${randomBytes(6).toString('hex')}`;
  ws.db.prepare('INSERT INTO policies (id, principal, document, managed_by, created_at) VALUES (?, ?, ?, ?, ?)').run(id, principal, JSON.stringify(document), managedBy ?? null, now());
  return id;
}

/** The id of an inline (unmanaged) policy of `principal` with exactly this document. */
export function sameInlinePolicy(ws: Workspace, principal: string, document: PolicyDocument): string | undefined {
  const row = ws.db.prepare('SELECT id FROM policies WHERE principal = ? AND managed_by IS NULL AND document = ?').get(principal, JSON.stringify(document)) as { id: string } | undefined;
  return row?.id;
}

/**
 * Attaches an inline policy to a principal (creating a user principal for a new name). Attaching
 * to `anonymous` grants callers without any key: that makes a resource public, and the security
 * audit reports it.
 */
export function attachPolicy(ws: Workspace, principal: string, document: unknown, by: Actor): AttachedPolicy {
  const doc = parsePolicyDocument(document);
  return audited(
    ws,
    by,
    'admin:AttachPolicy',
    `principal/${principal}`,
    () =>
      ws.db.transaction(() => {
        assertDelegable({ by, policiesOf: (name) => policiesFor(ws, name), documents: [doc], what: `attach this policy to ${principal}` });
        // a new name becomes a user (keys can be added later); role/NAME exists only with its function
        if (!getPrincipal(ws, principal)) {
          if (principal.startsWith('role/')) throw notFound(`Execution role ${principal}`, 'Roles come with their functions: kennel functions list.');
          ensurePrincipal(ws, principal, principal === ANONYMOUS ? 'anonymous' : 'user');
        }
        const id = attachPolicyRow(ws, principal, doc);
        return getPolicy(ws, id);
      })(),
    (r) => ({ policyId: r.id, document: r.document }),
  );
}

export function detachPolicy(ws: Workspace, principal: string, policyId: string, by: Actor): AttachedPolicy {
  return audited(ws, by, 'admin:DetachPolicy', `principal/${principal}`, () => {
    const policy = getPolicy(ws, policyId);
    if (policy.principal !== principal) throw notFound(`Policy ${policyId} of ${principal}`, `kennel policies show ${principal} lists its policies.`);
    if (policy.managedBy) throw Errors.InvalidRequest(`Policy ${policyId} is managed by ${policy.managedBy}.`, `Reset the role with kennel functions update ${policy.managedBy.replace(/^function:/, '')} --reset-role.`);
    ws.db.prepare('DELETE FROM policies WHERE id = ?').run(policyId);
    return policy;
  }, (r) => ({ policyId: r.id }));
}

export function getPolicy(ws: Workspace, id: string): AttachedPolicy {
  const r = ws.db.prepare('SELECT * FROM policies WHERE id = ?').get(id) as Row | undefined;
  if (!r) throw notFound(`Policy ${id}`, 'kennel policies list shows the policies.');
  return fromRow(r);
}

export function listPolicies(ws: Workspace, principal?: string): AttachedPolicy[] {
  const rows = (principal ? ws.db.prepare('SELECT * FROM policies WHERE principal = ? ORDER BY created_at, id').all(principal) : ws.db.prepare('SELECT * FROM policies ORDER BY principal, created_at, id').all()) as Row[];
  return rows.map(fromRow);
}

/** The documents that decide what `principal` may do. */
export function policiesFor(ws: Workspace, principal: string): PolicyDocument[] {
  return (ws.db.prepare('SELECT document FROM policies WHERE principal = ?').all(principal) as Array<{ document: string }>).map((r) => JSON.parse(r.document) as PolicyDocument);
}
