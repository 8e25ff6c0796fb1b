import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { Errors, KennelError, notFound } from '../core/index.js';
import { now, type Workspace } from '../store/index.js';
import { audited, type Actor } from './audit-log.js';
import { invalidSignature, unauthorized, unrecognizedClient } from './errors.js';
import { assertDelegable } from './delegation.js';
import { attachPolicyRow, policiesFor, sameInlinePolicy } from './policies.js';
import { policyFromGrants } from './policy.js';
import { seal, unseal } from './sealing.js';
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
  /** api: a Kennel bearer key (kn_...); aws: an AWS access key pair for SigV4-signed requests */
  type: 'api' | 'aws';
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

/** What AWS key creation returns: the only time the secret access key is shown. */
export interface CreatedAwsKey {
  principal: string;
  accessKeyId: string;
  secretAccessKey: string;
  expiresAt?: string;
}

export const ANONYMOUS = 'anonymous';
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** kn_<16 hex key id>_<43 base64url characters = 32 random bytes> */
const KEY = /^kn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const KEY_ID = /^(?:(?:kn_)?([0-9a-f]{16})(?:_.*)?|(AKIA[A-Z2-7]{16}))$/;
/** AWS access key ids: AKIA + 16 base32 characters, like AWS's own long-term keys */
const ACCESS_KEY_ID = /^AKIA[A-Z2-7]{16}$/;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function checkPrincipalName(name: string): string {
  if (!NAME.test(name)) throw Errors.InvalidRequest(`"${name}" is not a valid principal name.`, 'Use 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit.');
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

/** Keys live at most 10 years: longer is a key that never expires in all but name (and past what Date can hold). */
const MAX_KEY_LIFETIME_DAYS = 3650;

function checkLifetime(ms: number | undefined): void {
  if (ms === undefined || ms <= MAX_KEY_LIFETIME_DAYS * 86_400_000) return;
  throw Errors.InvalidRequest(`A key lifetime of ${Math.round(ms / 86_400_000)} days is too long: keys may live at most ${MAX_KEY_LIFETIME_DAYS} days (10 years).`, 'Use e.g. --expires 90d, and rotate keys before they expire (kennel keys rotate).');
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

interface NewKeyOptions {
  expiresAt?: string;
  rotatedFrom?: string;
  ratePerSecond?: number;
  burst?: number;
}

function insertKey(ws: Workspace, principal: string, opts: NewKeyOptions): CreatedKey {
  const keyId = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  ws.db
    .prepare('INSERT INTO api_keys (id, principal, secret_sha256, created_at, expires_at, rotated_from, rate_per_second, burst) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    .run(keyId, principal, sha256(secret).toString('hex'), now(), opts.expiresAt ?? null, opts.rotatedFrom ?? null, opts.ratePerSecond ?? null, opts.burst ?? null);
  return { principal, keyId, key: `kn_${keyId}_${secret}`, expiresAt: opts.expiresAt };
}

/** An AWS key pair: the secret (30 random bytes, 40 base64 characters like AWS's) is stored sealed, since SigV4 verification needs it. */
function insertAwsKey(ws: Workspace, principal: string, opts: NewKeyOptions): CreatedAwsKey {
  const accessKeyId = 'AKIA' + Array.from({ length: 16 }, () => BASE32[randomInt(32)]).join('');
  const secretAccessKey = randomBytes(30).toString('base64');
  ws.db
    .prepare('INSERT INTO api_keys (id, principal, secret_sha256, secret_sealed, created_at, expires_at, rotated_from, rate_per_second, burst) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
    .run(accessKeyId, principal, sha256(secretAccessKey).toString('hex'), seal(ws.home, secretAccessKey, accessKeyId), now(), opts.expiresAt ?? null, opts.rotatedFrom ?? null, opts.ratePerSecond ?? null, opts.burst ?? null);
  return { principal, accessKeyId, secretAccessKey, expiresAt: opts.expiresAt };
}

/** Creates a credential with `insert` for `principal` (created if new), with the inline policy of the grants; audited as admin:CreateKey. */
function newCredential<T extends { expiresAt?: string }>(ws: Workspace, principal: string, opts: CreateKeyOptions, by: Actor, insert: (ws: Workspace, principal: string, opts: NewKeyOptions) => T, idOf: (created: T) => string): T & { policyId?: string } {
  return audited(
    ws,
    by,
    'admin:CreateKey',
    `principal/${principal}`,
    () => {
      checkPrincipalName(principal);
      const policy = opts.allow?.length || opts.deny?.length ? policyFromGrants(opts.allow ?? [], opts.deny ?? []) : undefined;
      if (opts.burst !== undefined && opts.ratePerSecond === undefined) throw Errors.InvalidRequest('A burst needs a rate limit too.', 'Give both, e.g. --rate-limit 10 --burst 20.');
      if (opts.ratePerSecond !== undefined) checkRate(opts.ratePerSecond, opts.burst ?? 1);
      checkLifetime(opts.expiresInMs);
      return ws.db.transaction(() => {
        const p = ensurePrincipal(ws, principal, opts.kind ?? 'user');
        if (p.kind === 'role' || p.kind === 'anonymous') throw Errors.InvalidRequest(`${principal} is a ${p.kind === 'role' ? 'function execution role' : 'reserved principal'} and cannot have keys.`);
        // the key's holder gets the principal's existing policies as well as the new one
        assertDelegable({ by, policiesOf: (name) => policiesFor(ws, name), documents: [...policiesFor(ws, principal), ...(policy ? [policy] : [])], what: `create a key for ${principal}` });
        // a second key with the same grants (a setup script run twice) shares the policy already attached
        const policyId = policy ? (sameInlinePolicy(ws, principal, policy) ?? attachPolicyRow(ws, principal, policy)) : undefined;
        const expiresAt = opts.expiresInMs === undefined ? undefined : new Date(Date.now() + opts.expiresInMs).toISOString();
        return { ...insert(ws, principal, { expiresAt, ratePerSecond: opts.ratePerSecond, burst: opts.burst }), policyId };
      })();
    },
    (r) => ({ keyId: idOf(r), policyId: r.policyId, expiresAt: r.expiresAt }),
  );
}

/**
 * Creates a key for `principal` (creating the principal when new), with an inline policy built
 * from --allow/--deny grants when given. The returned key is never stored and cannot be shown again.
 */
export function createKey(ws: Workspace, principal: string, opts: CreateKeyOptions, by: Actor): CreatedKey & { policyId?: string } {
  return newCredential(ws, principal, opts, by, insertKey, (r) => r.keyId);
}

/**
 * Creates an AWS access key pair for `principal`, for clients that sign requests with AWS
 * Signature Version 4 (boto3, the AWS SDKs). Policies and limits work as for API keys; the
 * secret access key is returned once and stored sealed with the workspace master key.
 */
export function createAwsKey(ws: Workspace, principal: string, opts: CreateKeyOptions, by: Actor): CreatedAwsKey & { policyId?: string } {
  return newCredential(ws, principal, opts, by, insertAwsKey, (r) => r.accessKeyId);
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
  secret_sealed: string | null;
}

function stateOf(r: KeyRow, at: number): KeyState {
  if (r.revoked_at) return 'revoked';
  if (r.expires_at && Date.parse(r.expires_at) <= at) return 'expired';
  return 'active';
}

const infoOf = (r: KeyRow, at = Date.now()): ApiKeyInfo => ({
  keyId: r.id,
  type: r.secret_sealed === null ? 'api' : 'aws',
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

/** Accepts a key id, kn_<id>, a whole key (only its public id is used), or an AWS access key id. */
export function parseKeyId(text: string): string {
  const m = KEY_ID.exec(text.trim());
  if (!m) throw Errors.InvalidRequest(`"${text.slice(0, 24)}" is not a key id.`, 'Key ids are 16 hexadecimal characters (AWS access key ids: AKIA and 16 more); kennel keys list shows them.');
  return (m[1] ?? m[2])!;
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

/** A rotated key: a new API key, or a new AWS key pair for an AWS key. */
export type RotatedKey = (CreatedKey | (CreatedAwsKey & { keyId: string; key?: undefined })) & { oldKeyId: string; oldKeyExpiresAt: string };

/**
 * Rotation: a new key of the same type for the same principal; the old key stays valid for the
 * overlap window (so callers can switch without downtime) and then expires. The new key keeps
 * the old key's lifetime unless `expiresInMs` says otherwise.
 */
export function rotateKey(ws: Workspace, keyIdText: string, opts: { overlapMs: number; expiresInMs?: number }, by: Actor): RotatedKey {
  const keyId = parseKeyId(keyIdText);
  checkLifetime(opts.expiresInMs);
  return audited(
    ws,
    by,
    'admin:RotateKey',
    `key/${keyId}`,
    () =>
      ws.db.transaction(() => {
        const old = keyRow(ws, keyId);
        const state = stateOf(old, Date.now());
        if (state !== 'active') throw Errors.InvalidRequest(`Key ${keyId} is ${state} and cannot be rotated.`, `Create a new key with kennel keys create ${old.principal}.`);
        const t = Date.now();
        const lifetime = opts.expiresInMs ?? (old.expires_at ? Date.parse(old.expires_at) - Date.parse(old.created_at) : undefined);
        const settings = {
          expiresAt: lifetime === undefined ? undefined : new Date(t + lifetime).toISOString(),
          rotatedFrom: keyId,
          ratePerSecond: old.rate_per_second ?? undefined,
          burst: old.burst ?? undefined,
        };
        const created = old.secret_sealed === null ? insertKey(ws, old.principal, settings) : withKeyId(insertAwsKey(ws, old.principal, settings));
        const overlapEnd = t + opts.overlapMs;
        const oldKeyExpiresAt = new Date(old.expires_at ? Math.min(Date.parse(old.expires_at), overlapEnd) : overlapEnd).toISOString();
        ws.db.prepare('UPDATE api_keys SET expires_at = ? WHERE id = ?').run(oldKeyExpiresAt, keyId);
        return { ...created, oldKeyId: keyId, oldKeyExpiresAt };
      })(),
    (r) => ({ newKeyId: r.keyId, oldKeyExpiresAt: r.oldKeyExpiresAt }),
  );
}

const withKeyId = (k: CreatedAwsKey): CreatedAwsKey & { keyId: string } => ({ ...k, keyId: k.accessKeyId });

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
  const r = keyWithKind(ws, m[1]!);
  const presentedHash = sha256(m[2]!);
  const storedHash = r ? Buffer.from(r.secret_sha256, 'hex') : presentedHash.map((b) => ~b);
  if (!timingSafeEqual(presentedHash, storedHash) || !r) throw unauthorized('The API key is not valid.');
  const state = stateOf(r, at);
  if (state === 'revoked') throw unauthorized('The API key has been revoked.', 'Ask for a new key (kennel keys create).');
  if (state === 'expired') throw unauthorized('The API key has expired.', 'Ask for a new key, or rotate keys before they expire (kennel keys rotate).');
  return used(ws, r, at);
}

const keyWithKind = (ws: Workspace, id: string) => ws.db.prepare('SELECT k.*, p.kind AS kind FROM api_keys k JOIN principals p ON p.name = k.principal WHERE k.id = ?').get(id) as (KeyRow & { kind: PrincipalKind }) | undefined;

/** Records last use (hourly resolution, for the audit's unused-key rule). */
function used(ws: Workspace, r: KeyRow & { kind: PrincipalKind }, at: number): VerifiedKey {
  if (!r.last_used_at || at - Date.parse(r.last_used_at) > LAST_USED_RESOLUTION_MS) {
    ws.db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?').run(new Date(at).toISOString(), r.id);
  }
  return { principal: r.principal, kind: r.kind, keyId: r.id, ratePerSecond: r.rate_per_second ?? undefined, burst: r.burst ?? undefined };
}

/**
 * Checks a request signed with an AWS access key: `signedWith(secret)` recomputes the signature
 * with the stored secret. An unknown access key id is an unrecognized client (as with AWS: the
 * id is public); only once the signature matches does the error say that the key was revoked or
 * has expired. Records last use like verifyKey.
 */
export function verifyAwsKey(ws: Workspace, accessKeyId: string, signedWith: (secret: string) => boolean, at = Date.now()): VerifiedKey {
  const r = ACCESS_KEY_ID.test(accessKeyId) ? keyWithKind(ws, accessKeyId) : undefined;
  if (!r?.secret_sealed) throw unrecognizedClient('The security token included in the request is invalid.');
  if (!signedWith(unseal(ws.home, r.secret_sealed, r.id))) throw invalidSignature('The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.');
  const state = stateOf(r, at);
  if (state !== 'active') throw unrecognizedClient(`The security token included in the request is invalid: access key ${r.id} ${state === 'revoked' ? 'has been revoked' : 'has expired'}.`);
  return used(ws, r, at);
}
