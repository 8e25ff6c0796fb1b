import type { Workspace } from '../store/index.js';
import { listPolicies, type AttachedPolicy } from './policies.js';
import { actionMatches, type Statement } from './policy.js';
import { listKeys, listPrincipals } from './principals.js';
import { getSettings } from './settings.js';

export type Severity = 'high' | 'medium' | 'low';

export interface Finding {
  severity: Severity;
  rule: string;
  resource: string;
  message: string;
  /** a command that fixes it */
  fix: string;
}

export interface AuditOptions {
  /** the time the audit is run at (ms since epoch), default now */
  now?: number;
  /** a key unused for this many days is reported, default 90 */
  unusedDays?: number;
}

const DAY = 86_400_000;
const SEVERITY_ORDER: Record<Severity, number> = { high: 0, medium: 1, low: 2 };

const quote = (s: string) => (/^[A-Za-z0-9_./:@=-]+$/.test(s) ? s : `'${s}'`);
const isFullAccess = (action: string) => action === '*' || action === '*:*';
const hasWildcard = (s: string) => s.includes('*');
const isAdminAction = (action: string) => /^admin:/i.test(action);
const mayAdminister = (action: string) => isFullAccess(action) || isAdminAction(action) || action.startsWith('*:');
/**
 * Admin actions that reach full access transitively: a key for a principal that holds more
 * (or, without the delegation check, for oneself with `*:*`), a policy attached to oneself or to
 * a role, a rotated key of another principal.
 */
const ESCALATING = ['admin:CreateKey', 'admin:AttachPolicy', 'admin:RotateKey'];
const escalatingAction = (s: Statement) => ESCALATING.find((e) => s.actions.some((a) => actionMatches(a, e)));
const allows = (p: AttachedPolicy): Statement[] => p.document.statements.filter((s) => s.effect === 'allow');
const describe = (s: Statement) => `${s.actions.join(', ')} on ${s.resources.join(', ')}`;

/** What each principal actually did successfully, from the audit log: the basis for narrower grants. */
function usage(ws: Workspace): Map<string, Array<{ action: string; resource: string }>> {
  const rows = ws.db
    .prepare("SELECT DISTINCT principal, action, resource FROM audit_log WHERE principal IS NOT NULL AND status < 400 AND plane IN ('data', 'function', 'admin') ORDER BY principal, action, resource")
    .all() as Array<{ principal: string; action: string; resource: string }>;
  const used = new Map<string, Array<{ action: string; resource: string }>>();
  for (const r of rows) used.set(r.principal, [...(used.get(r.principal) ?? []), { action: r.action, resource: r.resource }]);
  return used;
}

function narrowFix(principal: string, policyId: string, used: Array<{ action: string; resource: string }> | undefined): string {
  const detach = `kennel policies detach ${quote(principal)} ${policyId}`;
  if (!used?.length) return detach;
  return `${detach} && kennel policies attach ${quote(principal)} ${used.map((u) => `--allow ${quote(`${u.action}:${u.resource}`)}`).join(' ')}`;
}

/**
 * Finds the classic mistakes of the seed projects (full-access roles, public endpoints, admin
 * keys on the data plane, keys that never expire) in the workspace's policies, keys, settings and
 * audit log. Each finding says what is wrong and a command that fixes it.
 */
export function runSecurityAudit(ws: Workspace, opts: AuditOptions = {}): { findings: Finding[] } {
  const at = opts.now ?? Date.now();
  const unusedDays = opts.unusedDays ?? 90;
  const findings: Finding[] = [];
  const used = usage(ws);
  const policies = listPolicies(ws);
  const principals = new Map(listPrincipals(ws).map((p) => [p.name, p]));
  const policiesOf = (name: string) => policies.filter((p) => p.principal === name);
  const keys = listKeys(ws);
  // keys and policies for oneself stay within one's own grants (the delegation check)
  const ownResources = (name: string) => new Set([`principal/${name}`, ...keys.filter((k) => k.principal === name).map((k) => `key/${k.keyId}`)]);

  for (const policy of policies) {
    const principal = principals.get(policy.principal);
    if (!principal || policy.managedBy) continue;
    for (const s of allows(policy)) {
      if (principal.kind === 'anonymous') {
        findings.push({
          severity: 'high',
          rule: 'unauthenticated-access',
          resource: s.resources.join(','),
          message: `Callers without any API key may ${describe(s)} (policy ${policy.id} of anonymous): it is reachable without authentication.`,
          fix: `kennel policies detach anonymous ${policy.id}`,
        });
      } else if (principal.kind === 'role') {
        const fn = principal.name.replace(/^role\//, '');
        const own = new Set(policiesOf(principal.name).filter((p) => p.managedBy).flatMap((p) => p.document.statements.flatMap((m) => m.resources)));
        const onlyInvoke = s.actions.every((a) => a.toLowerCase() === 'endpoint:invoke') && !s.resources.some(hasWildcard);
        // a narrow extra grant is only reported when the function never used it
        const unused = onlyInvoke ? s.resources.filter((r) => !own.has(r) && !used.get(principal.name)?.some((u) => u.resource === r)) : s.resources;
        if (unused.length === 0) continue;
        findings.push({
          severity: onlyInvoke ? 'medium' : 'high',
          rule: 'role-broader-than-function',
          resource: `function/${fn}`,
          message: onlyInvoke
            ? `The execution role of function ${fn} may also invoke ${unused.join(', ')} (policy ${policy.id}), which the function has never called.`
            : `The execution role of function ${fn} allows ${describe(s)} (policy ${policy.id}); the function only needs endpoint:Invoke on its own endpoint.`,
          fix: `kennel functions update ${quote(fn)} --reset-role`,
        });
      } else if (s.actions.some(isFullAccess)) {
        findings.push({
          severity: 'high',
          rule: 'full-access-policy',
          resource: `principal/${principal.name}`,
          message: `${principal.name} may do anything (${describe(s)}, policy ${policy.id}): like an AWS *FullAccess policy, its keys can invoke everything and change keys, policies and functions.`,
          fix: narrowFix(principal.name, policy.id, used.get(principal.name)),
        });
      } else if (escalatingAction(s) && s.resources.some((r) => hasWildcard(r) || !ownResources(principal.name).has(r))) {
        findings.push({
          severity: 'high',
          rule: 'admin-escalation',
          resource: `principal/${principal.name}`,
          message: `${principal.name} may ${escalatingAction(s)} (${describe(s)}, policy ${policy.id}): it can give itself or a key it makes more than it holds, up to full access.`,
          fix: narrowFix(principal.name, policy.id, used.get(principal.name)),
        });
      } else if (!s.actions.every(isAdminAction) && (s.actions.some(hasWildcard) || s.resources.some(hasWildcard))) {
        findings.push({
          severity: 'medium',
          rule: 'wildcard-policy',
          resource: `principal/${principal.name}`,
          message: `${principal.name} has a wildcard grant: ${describe(s)} (policy ${policy.id}); grant only the actions and resources it uses.`,
          fix: narrowFix(principal.name, policy.id, used.get(principal.name)),
        });
      }
    }
  }

  const dataPlaneUse = ws.db
    .prepare("SELECT key_id, principal, COUNT(*) AS n, MAX(ts) AS last FROM audit_log WHERE plane = 'data' AND key_id IS NOT NULL AND principal IS NOT NULL GROUP BY key_id, principal ORDER BY key_id")
    .all() as Array<{ key_id: string; principal: string; n: number; last: string }>;
  for (const u of dataPlaneUse) {
    if (!policiesOf(u.principal).some((p) => allows(p).some((s) => s.actions.some(mayAdminister)))) continue;
    const grants = (used.get(u.principal) ?? []).filter((g) => !isAdminAction(g.action));
    findings.push({
      severity: 'high',
      rule: 'admin-key-on-data-plane',
      resource: `key/${u.key_id}`,
      message: `Key ${u.key_id} of ${u.principal}, which may make admin changes, was used for ${u.n} data-plane request(s) (last ${u.last}); a leaked client key would then give away the workspace.`,
      fix: `kennel keys create ${quote(`${u.principal}-invoke`)} ${grants.map((g) => `--allow ${quote(`${g.action}:${g.resource}`)}`).join(' ') || '--allow function:Invoke:function/NAME'} --expires 90d`,
    });
  }

  for (const k of keys) {
    if (k.state !== 'active') continue;
    if (!k.expiresAt) {
      findings.push({
        severity: 'medium',
        rule: 'key-without-expiry',
        resource: `key/${k.keyId}`,
        message: `Key ${k.keyId} of ${k.principal} never expires.`,
        fix: `kennel keys rotate ${k.keyId} --expires 90d --overlap 24h`,
      });
    }
    const lastSeen = Date.parse(k.lastUsedAt ?? k.createdAt);
    if (at - lastSeen > unusedDays * DAY) {
      findings.push({
        severity: 'medium',
        rule: 'key-unused',
        resource: `key/${k.keyId}`,
        message: `Key ${k.keyId} of ${k.principal} has not been used for ${Math.floor((at - lastSeen) / DAY)} days${k.lastUsedAt ? '' : ' (never used)'}.`,
        fix: `kennel keys revoke ${k.keyId}`,
      });
    }
  }

  const { cors } = getSettings(ws);
  if (cors.origins.includes('*')) {
    findings.push({
      severity: 'medium',
      rule: 'cors-wildcard',
      resource: 'settings/cors',
      message: 'CORS allows every origin (*): any web page may call the API from a browser that holds a key.',
      fix: 'kennel security cors --allow-origin https://app.example.com',
    });
  }

  findings.sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity] || a.rule.localeCompare(b.rule) || a.resource.localeCompare(b.resource));
  return { findings };
}

