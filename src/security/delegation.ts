import { Errors, KennelError } from '../core/index.js';
import type { Actor } from './audit-log.js';
import { globMatch, type PolicyDocument, type Statement } from './policy.js';

/**
 * Owners act for the workspace itself: the local CLI user (`local:USER`) and the admin token
 * (`local:admin`). Principal names cannot contain ":", so no key can claim this.
 */
const isOwner = (by: Actor): boolean => by.principal.startsWith('local:');

/** Every value `inner` matches is matched by `outer` (`*` in inner is only consumed by a `*` of outer). */
function subsumes(outer: string, inner: string): boolean {
  return outer === '*' || globMatch(outer, inner);
}

/** Some value matches both patterns (memoised walk over both patterns; `*` is the only wildcard). */
function patternsIntersect(a: string, b: string): boolean {
  const seen = new Set<number>();
  const walk = (i: number, j: number): boolean => {
    if (i === a.length && j === b.length) return true;
    const key = i * (b.length + 1) + j;
    if (seen.has(key)) return false;
    seen.add(key);
    const ca = a[i];
    const cb = b[j];
    if (ca === '*' && walk(i + 1, j)) return true; // a's star matches nothing more
    if (cb === '*' && walk(i, j + 1)) return true;
    if (ca === '*' && cb !== undefined && cb !== '*' && walk(i, j + 1)) return true; // a's star eats b's character
    if (cb === '*' && ca !== undefined && ca !== '*' && walk(i + 1, j)) return true;
    return ca !== undefined && cb !== undefined && ca !== '*' && cb !== '*' && ca === cb && walk(i + 1, j + 1);
  };
  return walk(0, 0);
}

const lower = (s: string) => s.toLowerCase();

/** The first action/resource pair allowed by `wanted` that `held` does not cover, if any. */
function uncovered(held: readonly PolicyDocument[], wanted: readonly Statement[]): { action: string; resource: string } | undefined {
  const statements = held.flatMap((d) => d.statements);
  const allows = statements.filter((s) => s.effect === 'allow');
  const denies = statements.filter((s) => s.effect === 'deny');
  for (const s of wanted) {
    if (s.effect !== 'allow') continue; // a deny only narrows
    for (const action of s.actions) {
      for (const resource of s.resources) {
        const granted = allows.some((g) => g.actions.some((a) => subsumes(lower(a), lower(action))) && g.resources.some((r) => subsumes(r, resource)));
        const denied = denies.some((d) => d.actions.some((a) => a === '*' || patternsIntersect(lower(a), lower(action))) && d.resources.some((r) => patternsIntersect(r, resource)));
        if (!granted || denied) return { action, resource };
      }
    }
  }
  return undefined;
}

/**
 * No privilege escalation through delegation: a caller that is not an owner may only hand out
 * (in a new key, or a policy it attaches) what its own policies already allow. `documents` are
 * everything the change gives away: the new policy and, for a key of an existing principal, that
 * principal's policies (the key holder gets them all). Throws 403.
 */
export function assertDelegable(opts: { by: Actor; policiesOf: (principal: string) => PolicyDocument[]; documents: readonly PolicyDocument[]; what: string }): void {
  const { by, what } = opts;
  if (isOwner(by)) return;
  const gap = uncovered(opts.policiesOf(by.principal), opts.documents.flatMap((d) => d.statements));
  if (!gap) return;
  throw Errors.Forbidden(
    `${by.principal} may not ${what}: it would grant ${gap.action} on ${gap.resource}, which ${by.principal} is not allowed itself.`,
    'A caller can only delegate grants it holds; ask the workspace owner (kennel CLI or the admin token) to make this change.',
  );
}
