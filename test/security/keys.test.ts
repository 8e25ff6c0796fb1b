import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { KennelError } from '../../src/core/errors.ts';
import { Authorizer, createKey, getKey, listKeys, revokeKey, rotateKey, verifyKey, type Actor } from '../../src/security/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';

const by: Actor = { principal: 'local:test', plane: 'cli' };
const HOUR = 3_600_000;

function status(fn: () => unknown): number {
  try {
    fn();
    return 200;
  } catch (e) {
    if (e instanceof KennelError) return e.status;
    throw e;
  }
}

function errorOf(fn: () => unknown): KennelError {
  try {
    fn();
  } catch (e) {
    if (e instanceof KennelError) return e;
    throw e;
  }
  assert.fail('expected a KennelError');
}

describe('API key lifecycle', () => {
  it('creates keys of 32 random bytes, shown once and stored only as a sha256', () => {
    const home = tmpHome();
    const ws = openWorkspace(home);
    const created = createKey(ws, 'ci-bot', { kind: 'service', allow: ['endpoint:Invoke:endpoint/dogs'], expiresInMs: 24 * HOUR }, by);
    const m = /^kn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/.exec(created.key);
    assert.ok(m, created.key);
    assert.equal(m[1], created.keyId);
    assert.equal(Buffer.from(m[2]!, 'base64url').length, 32);
    const row = ws.db.prepare('SELECT secret_sha256 FROM api_keys WHERE id = ?').get(created.keyId) as { secret_sha256: string };
    assert.equal(row.secret_sha256, createHash('sha256').update(m[2]!).digest('hex'));
    // listing shows state, never the secret
    const listed = listKeys(ws, 'ci-bot');
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.state, 'active');
    assert.ok(!JSON.stringify(listed).includes(m[2]!));
    // a second key for the same principal: both work
    const second = createKey(ws, 'ci-bot', {}, by);
    assert.equal(verifyKey(ws, second.key).principal, 'ci-bot');
    assert.equal(verifyKey(ws, created.key).principal, 'ci-bot');
    ws.db.pragma('wal_checkpoint(TRUNCATE)');
    ws.close();
    // nothing in the workspace holds a secret
    for (const file of readdirSync(home, { recursive: true, withFileTypes: true })) {
      if (!file.isFile()) continue;
      const bytes = readFileSync(path.join(file.parentPath, file.name));
      for (const key of [created.key, second.key]) assert.ok(!bytes.includes(key.slice(20)), `${file.name} holds a key secret`);
    }
  });

  it('accepts Bearer and x-api-key, and refuses malformed, unknown and wrong keys with 401', () => {
    const ws = openWorkspace(tmpHome());
    const { key } = createKey(ws, 'alice', { allow: ['model:Read:*'] }, by);
    const auth = new Authorizer(ws);
    assert.equal(auth.authenticate({ authorization: `Bearer ${key}` }).principal, 'alice');
    assert.equal(auth.authenticate({ authorization: `bearer   ${key}` }).principal, 'alice');
    assert.equal(auth.authenticate({ 'x-api-key': key }).principal, 'alice');
    assert.equal(auth.authenticate({}).principal, 'anonymous');
    for (const bad of [`Basic ${key}`, 'Bearer', `Bearer ${key}x`, `Bearer ${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`, `Bearer kn_ffffffffffffffff_${key.slice(20)}`]) {
      assert.equal(status(() => auth.authenticate({ authorization: bad })), 401, bad.slice(0, 30));
    }
    assert.equal(errorOf(() => auth.authorize({}, 'model:Read', 'model/dogs')).status, 401, 'no key, and anonymous has no grants');
    ws.close();
  });

  it('expires keys', () => {
    const ws = openWorkspace(tmpHome());
    const { key, expiresAt } = createKey(ws, 'temp', { expiresInMs: HOUR }, by);
    const t0 = Date.now();
    assert.ok(Math.abs(Date.parse(expiresAt!) - (t0 + HOUR)) < 5000);
    assert.equal(verifyKey(ws, key, t0).principal, 'temp');
    const e = errorOf(() => verifyKey(ws, key, t0 + 2 * HOUR));
    assert.equal(e.status, 401);
    assert.match(e.message, /expired/);
    ws.close();
  });

  it('rotates: old and new keys both work during the overlap, then only the new one', () => {
    const ws = openWorkspace(tmpHome());
    const old = createKey(ws, 'svc', { allow: ['function:Invoke:function/classify'], expiresInMs: 30 * 24 * HOUR }, by);
    const t0 = Date.now();
    const rotated = rotateKey(ws, old.keyId, { overlapMs: HOUR }, by);
    assert.notEqual(rotated.keyId, old.keyId);
    assert.equal(rotated.oldKeyId, old.keyId);
    const auth = (at: number) => new Authorizer(ws, { clock: () => at });
    // during the overlap both keys authenticate and authorize
    for (const key of [old.key, rotated.key]) assert.equal(auth(t0 + HOUR / 2).authorize({ authorization: `Bearer ${key}` }, 'function:Invoke', 'function/classify').principal, 'svc');
    // after it only the new key does
    assert.equal(status(() => auth(t0 + 2 * HOUR).authorize({ authorization: `Bearer ${old.key}` }, 'function:Invoke', 'function/classify')), 401);
    assert.equal(auth(t0 + 2 * HOUR).authorize({ authorization: `Bearer ${rotated.key}` }, 'function:Invoke', 'function/classify').principal, 'svc');
    // the new key keeps the old key's 30-day lifetime and records where it came from
    assert.ok(Math.abs(Date.parse(rotated.expiresAt!) - (t0 + 30 * 24 * HOUR)) < 5000);
    assert.equal(getKey(ws, rotated.keyId).rotatedFrom, old.keyId);
    // an overlap never extends an old key's own expiry
    const short = createKey(ws, 'svc', { expiresInMs: HOUR }, by);
    assert.ok(Date.parse(rotateKey(ws, short.keyId, { overlapMs: 48 * HOUR }, by).oldKeyExpiresAt) <= t0 + HOUR + 5000);
    ws.close();
  });

  it('revokes keys at once, idempotently; a revoked key cannot be rotated', () => {
    const ws = openWorkspace(tmpHome());
    const { key, keyId } = createKey(ws, 'leaky', { allow: ['*:*'] }, by);
    const auth = new Authorizer(ws);
    assert.equal(auth.authorize({ 'x-api-key': key }, 'model:Read', 'model/x').principal, 'leaky');
    assert.equal(revokeKey(ws, `kn_${keyId}`, by).state, 'revoked');
    assert.equal(revokeKey(ws, key, by).state, 'revoked', 'a whole key is accepted as its id');
    const e = errorOf(() => auth.authorize({ 'x-api-key': key }, 'model:Read', 'model/x'));
    assert.equal(e.status, 401);
    assert.match(e.message, /revoked/);
    assert.equal(errorOf(() => rotateKey(ws, keyId, { overlapMs: HOUR }, by)).status, 400);
    assert.equal(errorOf(() => revokeKey(ws, '0000000000000000', by)).status, 404);
    ws.close();
  });

  it('validates names, grants and limits', () => {
    const ws = openWorkspace(tmpHome());
    assert.equal(errorOf(() => createKey(ws, 'Bad Name', {}, by)).status, 400);
    assert.equal(errorOf(() => createKey(ws, 'anonymous', {}, by)).status, 400);
    assert.match(errorOf(() => createKey(ws, 'x', { allow: ['endpoint:Invoke'] }, by)).message, /not ACTION:RESOURCE/);
    assert.match(errorOf(() => createKey(ws, 'x', { allow: ['compute:Run:endpoint/x'] }, by)).message, /not an action/);
    assert.match(errorOf(() => createKey(ws, 'x', { burst: 5 }, by)).message, /burst needs a rate limit/);
    assert.equal(listKeys(ws).length, 0, 'failed creations leave nothing behind');
    ws.close();
  });
});
