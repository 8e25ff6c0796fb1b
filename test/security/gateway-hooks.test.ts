import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { ThrottledError } from '../../src/security/errors.ts';
import { Authorizer, RateLimiter, appendAudit, createKey, readAudit, setCors, setRateLimit, type Actor } from '../../src/security/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { tmpHome } from '../helpers/paths.ts';
import { securedApp } from './app.ts';

const by: Actor = { principal: 'local:test', plane: 'cli' };

describe('rate limits, CORS and the audit log', () => {
  it('token bucket: bursts, then 429 with the seconds until a token is back, then refills', () => {
    let t = 0;
    const limiter = new RateLimiter(() => t);
    const limit = { perSecond: 2, burst: 3 };
    for (let i = 0; i < 3; i++) limiter.take('k', limit);
    assert.throws(
      () => limiter.take('k', limit),
      (e) => e instanceof ThrottledError && e.status === 429 && e.retryAfterSeconds === 1,
    );
    limiter.take('other', limit); // buckets are per key
    t += 500; // one token back
    limiter.take('k', limit);
    assert.throws(() => limiter.take('k', limit), ThrottledError);
    t += 10_000; // refills to the burst, not beyond
    for (let i = 0; i < 3; i++) limiter.take('k', limit);
    assert.throws(() => limiter.take('k', limit), ThrottledError);
  });

  it('rate-limits each key over HTTP with 429 and Retry-After; the key limit overrides the workspace default', async () => {
    const ws = openWorkspace(tmpHome());
    setRateLimit(ws, { perSecond: 1000, burst: 1000 }, by);
    const slow = createKey(ws, 'slow', { allow: ['model:Read:*'], ratePerSecond: 0.5, burst: 2 }, by);
    const fast = createKey(ws, 'fast', { allow: ['model:Read:*'] }, by);
    const registry = new Registry();
    const server = await securedApp({ ws, plane: 'data', registry, authorizer: new Authorizer(ws, { rateLimiter: new RateLimiter() }) }, (app) => {
      app.get('/models/:name', { config: { auth: { action: 'model:Read', resource: () => 'model/dogs' } } }, async () => ({ ok: true }));
    });
    try {
      const get = (key: string) => fetch(`${server.url}/models/dogs`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal((await get(slow.key)).status, 200);
      assert.equal((await get(slow.key)).status, 200);
      const throttled = await get(slow.key);
      assert.equal(throttled.status, 429);
      assert.equal(throttled.headers.get('retry-after'), '2');
      assert.match(((await throttled.json()) as { error: { message: string } }).error.message, /Rate limit exceeded/);
      for (let i = 0; i < 5; i++) assert.equal((await get(fast.key)).status, 200, 'other keys are not affected');
      assert.match(await registry.metrics(), /kennel_auth_requests_total\{plane="data",outcome="throttled"\} 1/);
      assert.ok(readAudit(ws, { principal: 'slow' }).some((e) => e.status === 429 && e.plane === 'data'));
    } finally {
      await server.close();
      ws.close();
    }
  });

  it('CORS is off by default, and answers only allowlisted origins when on', async () => {
    const ws = openWorkspace(tmpHome());
    const server = await securedApp({ ws, plane: 'data' }, (app) => {
      app.post('/functions/x/invoke', { config: { auth: 'public' } }, async () => ({ ok: true }));
    });
    const preflight = (origin: string) =>
      fetch(`${server.url}/functions/x/invoke`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } });
    try {
      let res = await preflight('https://app.example.com');
      assert.equal(res.status, 204);
      assert.equal(res.headers.get('access-control-allow-origin'), null, 'off by default');
      assert.throws(() => setCors(ws, { origins: ['*'], credentials: true }, by), /never|cannot allow every origin/);
      assert.throws(() => setCors(ws, { origins: ['https://app.example.com/path'], credentials: false }, by), /not an origin/);
      setCors(ws, { origins: ['https://app.example.com'], credentials: true }, by);
      // settings are re-read every few seconds; a new server sees them at once
      await server.close();
      const again = await securedApp({ ws, plane: 'data' }, (app) => {
        app.post('/functions/x/invoke', { config: { auth: 'public' } }, async () => ({ ok: true }));
      });
      res = await fetch(`${again.url}/functions/x/invoke`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } });
      assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example.com');
      assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
      assert.match(res.headers.get('access-control-allow-headers') ?? '', /authorization/);
      res = await fetch(`${again.url}/functions/x/invoke`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      assert.equal(res.headers.get('access-control-allow-origin'), null);
      await again.close();
    } finally {
      ws.close();
    }
  });

  it('the audit log is append-only and keeps no secrets or image bytes', () => {
    const ws = openWorkspace(tmpHome());
    const { key } = createKey(ws, 'alice', { allow: ['*:*'] }, by);
    appendAudit(ws, {
      plane: 'data',
      principal: 'alice',
      action: 'function:Invoke',
      resource: 'function/classify',
      status: 200,
      detail: { note: `someone pasted ${key} here`, image: Buffer.alloc(10_000).toString('base64'), raw: new Uint8Array(100) },
    });
    assert.throws(() => createKey(ws, key, {}, by), /not a valid principal name/); // a key pasted as a name
    const text = JSON.stringify(readAudit(ws, { limit: 2 }));
    assert.ok(!text.includes(key.slice(20)), 'no key secret');
    assert.match(text, /kn_[0-9a-f]{16}_\[redacted\]/);
    assert.match(text, /\[13336 characters omitted\]/);
    assert.match(text, /\[100 bytes omitted\]/);
    assert.throws(() => ws.db.prepare('UPDATE audit_log SET status = 200').run(), /append-only/);
    assert.throws(() => ws.db.prepare('DELETE FROM audit_log').run(), /append-only/);
    // admin changes are recorded with who made them and the outcome
    assert.ok(readAudit(ws, { principal: 'local:test' }).some((e) => e.action === 'admin:CreateKey' && e.resource === 'principal/alice' && e.status === 200 && e.plane === 'cli'));
    ws.close();
  });
});
