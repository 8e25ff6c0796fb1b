import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { KennelError, notFound } from '../core/errors.js';
import { now, type Workspace } from '../store/index.js';
import { audited, type Actor } from './audit-log.js';
import { unauthorized } from './errors.js';
import { attachPolicyRow } from './policies.js';
import { policyFromGrants } from './policy.js';
import { checkRate } from './settings.js';

/** user and service: people and programs with keys; role: a function's execution role; anonymous: callers without a key. */
export type PrincipalKind = 'user' | 'service' | 'role' | 'anonymous';

export interface Principal {
  name: string;
  kind: PrincipalKind;
  createdAt: string;
}

export type KeyState = 'active' | 'expired' | 'revoked';

export interface ApiKeyInfo {
  keyId: string;
  principal: string;
  state: KeyState;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
  lastUsedAt?: string;
  rotatedFrom?: string;
  ratePerSecond?: number;
  burst?: number;
}

/** What key creation returns: the only time the secret key is ever available. */
export interface CreatedKey {
  principal: string;
  keyId: string;
  key: string;
  expiresAt?: string;
}

export const ANONYMOUS = 'anonymous';
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** kn_<16 hex key id>_<43 base64url characters = 32 random bytes> */
const KEY = /^kn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const KEY_ID = /^(?:kn_)?([0-9a-f]{16})(?:_.*)?$/;

export function checkPrincipalName(name: string): string {
  if (!NAME.test(name)) throw new KennelError(`"${name}" is not a valid principal name.`, 'Use 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit.');
  return name;
}

interface PrincipalRow {
  name: string;
  kind: PrincipalKind;
  created_at: string;
}

export function getPrincipal(ws: Workspace, name: string): Principal | undefined {
  const r = ws.db.prepare('SELECT * FROM principals WHERE name = ?').get(name) as PrincipalRow | undefined;
  return r && { name: r.name, kind: r.kind, createdAt: r.created_at };
}

export function listPrincipals(ws: Workspace): Principal[] {
  return (ws.db.prepare('SELECT * FROM principals ORDER BY name').all() as PrincipalRow[]).map((r) => ({ name: r.name, kind: r.kind, createdAt: r.created_at }));
}

/** Creates the principal when missing; `anonymous` and roles are reserved for their own kinds. */
export function ensurePrincipal(ws: Workspace, name: string, kind: PrincipalKind): Principal {
  if (name === ANONYMOUS) kind = 'anonymous';
  else if (kind !== 'role') checkPrincipalName(name);
  const existing = getPrincipal(ws, name);
  if (existing) return existing;
  const t = now();
  ws.db.prepare('INSERT INTO principals (name, kind, created_at) VALUES (?, ?, ?)').run(name, kind, t);
  return { name, kind, createdAt: t };
}

const sha256 = (secret: string): Buffer => createHash('sha256').update(secret).digest();

export interface CreateKeyOptions {
  kind?: 'user' | 'service';
  allow?: readonly string[];
  deny?: readonly string[];
  /** lifetime in ms; undefined means no expiry (flagged by the security audit) */
  expiresInMs?: number;
  ratePerSecond?: number;
  burst?: number;
}

function insertKey(ws: Workspace, principal: string, opts: { expiresAt?: string; rotatedFrom?: string; ratePerSecond?: number; burst?: number }): CreatedKey {
  const keyId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  ws.db
    .prepare('INSERT INTO api_keys (id, principal, secret_sha256, created_at, expires_at, rotated_from, rate_per_second, burst) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    .run(keyId, principal, sha256(secret).toString('hex'), now(), opts.expiresAt ?? null, opts.rotatedFrom ?? null, opts.ratePerSecond ?? null, opts.burst ?? null);
  return { principal, keyId, key: `kn_${keyId}_${secret}`, expiresAt: opts.expiresAt };
}

/**
 * Creates a key for `principal` (creating the principal when new), with an inline policy built
 * from --allow/--deny grants when given. The returned key is never stored and cannot be shown again.
 */
export function createKey(ws: Workspace, principal: string, opts: CreateKeyOptions, by: Actor): CreatedKey & { policyId?: string } {
  return audited(
    ws,
    by,
    'admin:CreateKey',
    `principal/${principal}`,
    () => {
      checkPrincipalName(principal);
      const policy = opts.allow?.length || opts.deny?.length ? policyFromGrants(opts.allow ?? [], opts.deny ?? []) : undefined;
      if (opts.burst !== undefined && opts.ratePerSecond === undefined) throw new KennelError('A burst needs a rate limit too.', 'Give both, e.g. --rate-limit 10 --burst 20.');
      if (opts.ratePerSecond !== undefined) checkRate(opts.ratePerSecond, opts.burst ?? 1);
      return ws.db.transaction(() => {
        const p = ensurePrincipal(ws, principal, opts.kind ?? 'user');
        if (p.kind === 'role' || p.kind === 'anonymous') throw new KennelError(`${principal} is a ${p.kind === 'role' ? 'function execution role' : 'reserved principal'} and cannot have keys.`);
        const policyId = policy ? attachPolicyRow(ws, principal, policy) : undefined;
        const expiresAt = opts.expiresInMs === undefined ? undefined : new Date(Date.now() + opts.expiresInMs).toISOString();
        return { ...insertKey(ws, principal, { expiresAt, ratePerSecond: opts.ratePerSecond, burst: opts.burst }), policyId };
      })();
    },
    (r) => ({ keyId: r.keyId, policyId: r.policyId, expiresAt: r.expiresAt }),
  );
}

interface KeyRow {
  id: string;
  principal: string;
  secret_sha256: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  rotated_from: string | null;
  rate_per_second: number | null;
  burst: number | null;
}

function stateOf(r: KeyRow, at: number): KeyState {
  if (r.revoked_at) return 'revoked';
  if (r.expires_at && Date.parse(r.expires_at) <= at) return 'expired';
  return 'active';
}

const infoOf = (r: KeyRow, at = Date.now()): ApiKeyInfo => ({
  keyId: r.id,
  principal: r.principal,
  state: stateOf(r, at),
  createdAt: r.created_at,
  expiresAt: r.expires_at ?? undefined,
  revokedAt: r.revoked_at ?? undefined,
  lastUsedAt: r.last_used_at ?? undefined,
  rotatedFrom: r.rotated_from ?? undefined,
  ratePerSecond: r.rate_per_second ?? undefined,
  burst: r.burst ?? undefined,
});

/** Accepts a key id, kn_<id>, or a whole key (only its public id is used). */
export function parseKeyId(text: string): string {
  const m = KEY_ID.exec(text.trim());
  if (!m) throw new KennelError(`"${text.slice(0, 24)}" is not a key id.`, 'Key ids are 16 hexadecimal characters; kennel keys list shows them.');
  return m[1]!;
}

function keyRow(ws: Workspace, keyId: string): KeyRow {
  const r = ws.db.prepare('SELECT * FROM api_keys WHERE id = ?').get(keyId) as KeyRow | undefined;
  if (!r) throw notFound(`Key ${keyId}`, 'kennel keys list shows the keys.');
  return r;
}

export function getKey(ws: Workspace, keyId: string): ApiKeyInfo {
  return infoOf(keyRow(ws, parseKeyId(keyId)));
}

export function listKeys(ws: Workspace, principal?: string): ApiKeyInfo[] {
  const rows = (principal ? ws.db.prepare('SELECT * FROM api_keys WHERE principal = ? ORDER BY created_at, id').all(principal) : ws.db.prepare('SELECT * FROM api_keys ORDER BY principal, created_at, id').all()) as KeyRow[];
  return rows.map((r) => infoOf(r));
}

export function revokeKey(ws: Workspace, keyIdText: string, by: Actor): ApiKeyInfo {
  const keyId = parseKeyId(keyIdText);
  return audited(ws, by, 'admin:RevokeKey', `key/${keyId}`, () => {
    const r = keyRow(ws, keyId);
    if (!r.revoked_at) ws.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').run(now(), keyId);
    return infoOf(keyRow(ws, keyId));
  });
}

/**
 * Rotation: a new key for the same principal; the old key stays valid for the overlap window
 * (so callers can switch without downtime) and then expires. The new key keeps the old key's
 * lifetime unless `expiresInMs` says otherwise.
 */
export function rotateKey(ws: Workspace, keyIdText: string, opts: { overlapMs: number; expiresInMs?: number }, by: Actor): CreatedKey & { oldKeyId: string; oldKeyExpiresAt: string } {
  const keyId = parseKeyId(keyIdText);
  return audited(
    ws,
    by,
    'admin:RotateKey',
    `key/${keyId}`,
    () =>
      ws.db.transaction(() => {
        const old = keyRow(ws, keyId);
        const state = stateOf(old, Date.now());
        if (state !== 'active') throw new KennelError(`Key ${keyId} is ${state} and cannot be rotated.`, `Create a new key with kennel keys create ${old.principal}.`);
        const t = Date.now();
        const lifetime = opts.expiresInMs ?? (old.expires_at ? Date.parse(old.expires_at) - Date.parse(old.created_at) : undefined);
        const created = insertKey(ws, old.principal, {
          expiresAt: lifetime === undefined ? undefined : new Date(t + lifetime).toISOString(),
          rotatedFrom: keyId,
          ratePerSecond: old.rate_per_second ?? undefined,
          burst: old.burst ?? undefined,
        });
        const overlapEnd = t + opts.overlapMs;
        const oldKeyExpiresAt = new Date(old.expires_at ? Math.min(Date.parse(old.expires_at), overlapEnd) : overlapEnd).toISOString();
        ws.db.prepare('UPDATE api_keys SET expires_at = ? WHERE id = ?').run(oldKeyExpiresAt, keyId);
        return { ...created, oldKeyId: keyId, oldKeyExpiresAt };
      })(),
    (r) => ({ newKeyId: r.keyId, oldKeyExpiresAt: r.oldKeyExpiresAt }),
  );
}

export interface VerifiedKey {
  principal: string;
  kind: PrincipalKind;
  keyId: string;
  ratePerSecond?: number;
  burst?: number;
}

const LAST_USED_RESOLUTION_MS = 3_600_000;

/**
 * Checks a presented key: the secret's sha256 is compared in constant time with the stored one,
 * then expiry and revocation. Every failure is a 401; whether a key id exists is not revealed
 * to callers that do not hold its secret. Records last use (hourly resolution, for the audit).
 */
export function verifyKey(ws: Workspace, presented: string, at = Date.now()): VerifiedKey {
  const m = KEY.exec(presented);
  if (!m) throw unauthorized('The API key is malformed.', 'Keys look like kn_<id>_<secret>, exactly as kennel keys create printed them.');
  const r = ws.db.prepare('SELECT k.*, p.kind AS kind FROM api_keys k JOIN principals p ON p.name = k.principal WHERE k.id = ?').get(m[1]!) as (KeyRow & { kind: PrincipalKind }) | undefined;
  const presentedHash = sha256(m[2]!);
  const storedHash = r ? Buffer.from(r.secret_sha256, 'hex') : presentedHash.map((b) => ~b);
  if (!timingSafeEqual(presentedHash, storedHash) || !r) throw unauthorized('The API key is not valid.');
  const state = stateOf(r, at);
  if (state === 'revoked') throw unauthorized('The API key has been revoked.', 'Ask for a new key (kennel keys create).');
  if (state === 'expired') throw unauthorized('The API key has expired.', 'Ask for a new key, or rotate keys before they expire (kennel keys rotate).');
  if (!r.last_used_at || at - Date.parse(r.last_used_at) > LAST_USED_RESOLUTION_MS) {
    ws.db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?').run(new Date(at).toISOString(), r.id);
  }
  return { principal: r.principal, kind: r.kind, keyId: r.id, ratePerSecond: r.rate_per_second ?? undefined, burst: r.burst ?? undefined };
}
