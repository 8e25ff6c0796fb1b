import { Errors, KennelError } from '../core/index.js';

export type Effect = 'allow' | 'deny';

export interface Statement {
  effect: Effect;
  actions: string[];
  resources: string[];
}

/** An IAM-like policy: default deny, any matching deny wins over any allow. */
export interface PolicyDocument {
  statements: Statement[];
}

/**
 * Services an action may name; admin:* covers every change to the workspace (keys, policies,
 * functions, endpoints); console:* signing in to the web console and reading its pages.
 */
export const SERVICES = ['endpoint', 'function', 'model', 'dataset', 'admin', 'console'] as const;
/** Resource types: endpoint/NAME, function/NAME, model/NAME, dataset/NAME, principal/NAME, key/ID, job/ID, backbone/ID, console/PAGE. */
export const RESOURCE_TYPES = ['endpoint', 'function', 'model', 'dataset', 'principal', 'key', 'settings', 'job', 'backbone', 'console'] as const;

const ACTION = new RegExp(`^(\\*|(\\*|${SERVICES.join('|')}):[A-Za-z*]+)$`);
const RESOURCE = new RegExp(`^(\\*|(\\*|${RESOURCE_TYPES.join('|')})/[A-Za-z0-9._@:*/-]+)$`);

const bad = (message: string) =>
  Errors.InvalidPolicy(message, 'A policy is {"statements": [{"effect": "allow", "actions": ["endpoint:Invoke"], "resources": ["endpoint/dogs"]}]}; actions are SERVICE:Verb (endpoint, function, model, dataset, admin, console), resources TYPE/NAME, and * matches anything.');

export function checkAction(action: string): string {
  if (!ACTION.test(action)) throw bad(`"${action}" is not an action.`);
  return action;
}

export function checkResource(resource: string): string {
  if (!RESOURCE.test(resource)) throw bad(`"${resource}" is not a resource.`);
  return resource;
}

/**
 * Parses a command-line grant ACTION:RESOURCE, e.g. endpoint:Invoke:endpoint/dogs, admin:UpdateEndpoint:endpoint/dogs or
 * '*:*' (every action on every resource).
 */
export function parseGrant(text: string): { action: string; resource: string } {
  // SERVICE:Verb:RESOURCE first, so *:Invoke:endpoint/x is not read as * on "Invoke:endpoint/x"
  const m = /^(?:([a-z*]+:[A-Za-z*]+)|(\*)):(.+)$/.exec(text);
  if (!m) throw bad(`"${text}" is not ACTION:RESOURCE (e.g. endpoint:Invoke:endpoint/dogs, or '*:*').`);
  return { action: checkAction(m[1] ?? m[2]!), resource: checkResource(m[3]!) };
}

/** A policy with one statement per grant. */
export function policyFromGrants(allow: readonly string[], deny: readonly string[] = []): PolicyDocument {
  const statement = (effect: Effect, grant: string): Statement => {
    const { action, resource } = parseGrant(grant);
    return { effect, actions: [action], resources: [resource] };
  };
  return { statements: [...allow.map((g) => statement('allow', g)), ...deny.map((g) => statement('deny', g))] };
}

const list = (value: unknown, field: string): string[] => {
  const items = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(items) || items.length === 0 || !items.every((v) => typeof v === 'string')) throw bad(`"${field}" must be a non-empty list of strings.`);
  return items as string[];
};

/**
 * Validates a policy document. Also accepts AWS IAM spelling (Statement/Effect/Action/Resource,
 * strings or lists), so an IAM policy can be pasted.
 */
export function parsePolicyDocument(input: unknown): PolicyDocument {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw bad('A policy must be a JSON object.');
  const doc = input as Record<string, unknown>;
  const rawStatements = doc.statements ?? doc.Statement ?? ('effect' in doc || 'Effect' in doc ? [doc] : undefined);
  const items = Array.isArray(rawStatements) ? rawStatements : rawStatements === undefined ? undefined : [rawStatements];
  if (!items || items.length === 0) throw bad('A policy needs a non-empty "statements" list.');
  const statements = items.map((raw, i): Statement => {
    if (typeof raw !== 'object' || raw === null) throw bad(`Statement ${i + 1} must be an object.`);
    const s = raw as Record<string, unknown>;
    const effect = String(s.effect ?? s.Effect ?? '').toLowerCase();
    if (effect !== 'allow' && effect !== 'deny') throw bad(`Statement ${i + 1} needs "effect": "allow" or "deny".`);
    return {
      effect,
      actions: list(s.actions ?? s.Action, `statements[${i}].actions`).map(checkAction),
      resources: list(s.resources ?? s.Resource, `statements[${i}].resources`).map(checkResource),
    };
  });
  return { statements };
}

/** Glob match where * matches any run of characters (iterative, so no pathological backtracking). */
export function globMatch(pattern: string, value: string): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let mark = 0;
  while (v < value.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === value[v]) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = v;
    } else if (star >= 0) {
      p = star + 1;
      v = ++mark;
    } else return false;
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** Action names compare case-insensitively (as in IAM); resource names are exact. */
export const actionMatches = (pattern: string, action: string): boolean => pattern === '*' || globMatch(pattern.toLowerCase(), action.toLowerCase());
export const resourceMatches = (pattern: string, resource: string): boolean => globMatch(pattern, resource);

const covers = (s: Statement, action: string, resource: string) => s.actions.some((a) => actionMatches(a, action)) && s.resources.some((r) => resourceMatches(r, resource));

export type Decision = 'allow' | 'explicit-deny' | 'implicit-deny';

export function evaluate(documents: readonly PolicyDocument[], action: string, resource: string): Decision {
  let allowed = false;
  for (const doc of documents) {
    for (const s of doc.statements) {
      if (!covers(s, action, resource)) continue;
      if (s.effect === 'deny') return 'explicit-deny';
      allowed = true;
    }
  }
  return allowed ? 'allow' : 'implicit-deny';
}
