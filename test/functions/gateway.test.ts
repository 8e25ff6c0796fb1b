import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { KennelError } from '../../src/core/errors.ts';
import { createFunction, FunctionGateway, updateFunction, type Invocation } from '../../src/functions/index.ts';
import { attachPolicy, readAudit, ThrottledError, type Actor } from '../../src/security/index.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { sharedDir, tmpHome } from '../helpers/paths.ts';
import { FakeEndpoints } from './fake-endpoint.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = (name: string) => path.join(here, 'fixtures', name);
const jpeg = readFileSync(path.join(sharedDir(), 'data/real-photos/aipnd-dogs/Beagle_01125.jpg'));
const by: Actor = { principal: 'local:test', plane: 'cli' };

let ws: Workspace;
let endpoints: FakeEndpoints;
let gateway: FunctionGateway;
let registry: Registry;
let server: http.Server;
let imageUrl = '';

const body = (inv: Invocation) => JSON.parse(inv.response.body);

async function rejection(p: Promise<unknown>): Promise<KennelError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KennelError, String(e));
    return e;
  }
  assert.fail('expected the invocation to fail');
}

async function counter(name: string, labels: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

before(async () => {
  ws = openWorkspace(tmpHome());
  endpoints = new FakeEndpoints();
  registry = new Registry();
  server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpeg));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  imageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dog.jpg`;
  // the explicit test configuration that lets {"url"} reach the local server
  gateway = new FunctionGateway({ ws, endpoints, registry, fetch: { allowHttp: true, allowPrivate: ['127.0.0.1'] } });
  await createFunction(ws, 'classify', { endpoint: 'dogs' }, by);
  await createFunction(ws, 'user', { endpoint: 'dogs', handler: fixture('handler.ts'), timeoutMs: 2000 }, by);
});

after(async () => {
  await gateway.close();
  server.close();
  ws.close();
});

describe('built-in classify handler', () => {
  it('classifies {"image": base64} and {"url"} through the endpoint, returning the top-k breeds', async () => {
    const inv = await gateway.invoke('classify', { image: jpeg.toString('base64'), topK: 3 });
    assert.equal(inv.response.statusCode, 200);
    assert.equal(inv.response.headers['content-type'], 'application/json');
    const out = body(inv);
    assert.deepEqual(out.predictions.map((p: { label: string }) => p.label), ['Beagle', 'Basenji', 'Boxer']);
    assert.equal(out.model, 'dogs-model@1');
    assert.deepEqual(endpoints.calls.at(-1), { endpoint: 'dogs', bytes: jpeg.length, contentType: 'image/jpeg', topK: 3 });
    const byUrl = await gateway.invoke('classify', { url: imageUrl });
    assert.equal(byUrl.response.statusCode, 200, byUrl.response.body);
    assert.equal(body(byUrl).predictions.length, 5);
  });

  it('answers bad input with 4xx proxy responses that explain it', async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      [{}, 400, /exactly one of "url" or "image"/],
      [{ url: imageUrl, image: 'AAAA' }, 400, /exactly one/],
      [[1, 2], 400, /must be a JSON object/],
      [{ image: 'not base64!!' }, 400, /not valid base64/],
      [{ image: Buffer.from('hello, this is plain text').toString('base64') }, 415, /not a JPEG, PNG/],
      [{ image: '' }, 400, /empty/],
      [{ image: 12 }, 400, /must be a base64 string/],
      [{ url: 'https://169.254.169.254/latest/meta-data/' }, 400, /link-local/],
      [{ url: 'file:///etc/passwd' }, 400, /scheme file:/],
      [{ url: imageUrl, topK: 0 }, 400, /topK/],
      [{ image: 'A'.repeat(12 * 1024 * 1024) }, 413, /larger than 8 MiB/],
    ];
    for (const [event, status, message] of cases) {
      const inv = await gateway.invoke('classify', event);
      assert.equal(inv.response.statusCode, status, JSON.stringify(event).slice(0, 80));
      assert.match(body(inv).error.message, message);
    }
  });

  it('passes endpoint refusals on with their status', async () => {
    await createFunction(ws, 'orphan', { endpoint: 'missing' }, by);
    const inv = await gateway.invoke('orphan', { image: jpeg.toString('base64') });
    assert.equal(inv.response.statusCode, 404);
    assert.match(body(inv).error.message, /Endpoint missing was not found/);
  });
});

describe('user handlers in worker threads', () => {
  it('bundles and runs the handler with its context, without the daemon environment', async () => {
    process.env.KENNEL_TEST_SECRET = 'must-not-leak';
    const inv = await gateway.invoke('user', { mode: 'echo', text: 'woof' }, { requestId: 'req-1' });
    assert.equal(inv.response.statusCode, 200);
    assert.equal(inv.response.headers['x-handler'], 'yes');
    const out = body(inv);
    assert.equal(out.text, 'WOOF!', 'a relative import was bundled');
    assert.deepEqual([out.functionName, out.requestId, out.endpoint, out.memory, out.remainingOk], ['user', 'req-1', 'dogs', 256, true]);
    assert.deepEqual(out.envKeys, ['KENNEL_FUNCTION_NAME', 'NODE_ENV']);
    // a plain return value becomes a 200 JSON response
    const plain = await gateway.invoke('user', { mode: 'plain' });
    assert.deepEqual([plain.response.statusCode, body(plain)], [200, { hello: 'world' }]);
  });

  it('lets the handler invoke only the endpoints its execution role allows, checked in the parent', async () => {
    const own = await gateway.invoke('user', { mode: 'call', endpoint: 'dogs' }, { requestId: 'req-own' });
    assert.equal(body(own).result.model, 'dogs-model@1');
    const other = await gateway.invoke('user', { mode: 'call', endpoint: 'cats' }, { requestId: 'req-other' });
    assert.equal(other.response.statusCode, 403);
    assert.match(body(other).error, /role\/user is not allowed to endpoint:Invoke on endpoint\/cats/);
    assert.ok(!endpoints.calls.some((c) => c.endpoint === 'cats'), 'the refused call never reached the endpoint');
    const trail = readAudit(ws, { principal: 'role/user', plane: 'function' });
    assert.ok(trail.some((e) => e.resource === 'endpoint/dogs' && e.status === 200 && e.requestId === 'req-own'));
    assert.ok(trail.some((e) => e.resource === 'endpoint/cats' && e.status === 403 && e.requestId === 'req-other'));
    // widening the role (what the security audit reports) is what makes the call possible
    attachPolicy(ws, 'role/user', { statements: [{ effect: 'allow', actions: ['endpoint:Invoke'], resources: ['endpoint/cats'] }] }, by);
    const widened = await gateway.invoke('user', { mode: 'call', endpoint: 'cats' });
    assert.equal(body(widened).result.model, 'cats-model@1');
    await updateFunction(ws, 'user', { resetRole: true }, by);
    assert.equal((await gateway.invoke('user', { mode: 'call', endpoint: 'cats' })).response.statusCode, 403);
  });

  it('turns handler errors, bad responses, timeouts and memory exhaustion into 5xx, and replaces the instance', async () => {
    const thrown = await rejection(gateway.invoke('user', { mode: 'throw' }));
    assert.deepEqual([thrown.status, thrown.code], [502, 'function_error']);
    assert.match(thrown.message, /boom from the handler/);
    assert.match((await rejection(gateway.invoke('user', { mode: 'bad-status' }))).message, /invalid statusCode/);

    await createFunction(ws, 'spinner', { endpoint: 'dogs', handler: fixture('handler.ts'), timeoutMs: 300 }, by);
    const timeout = await rejection(gateway.invoke('spinner', { mode: 'spin' }));
    assert.deepEqual([timeout.status, timeout.code], [504, 'function_timeout']);
    const after = await gateway.invoke('spinner', { mode: 'plain' });
    assert.equal(after.coldStart, true, 'the spinning thread was terminated, so a new one starts');

    await createFunction(ws, 'hog', { endpoint: 'dogs', handler: fixture('handler.ts'), memoryMb: 64, timeoutMs: 20_000 }, by);
    const oom = await rejection(gateway.invoke('hog', { mode: 'hog' }));
    assert.deepEqual([oom.status, oom.code], [502, 'function_out_of_memory']);
    assert.match(oom.message, /ran out of memory \(64 MB\)/);
    assert.equal((await gateway.invoke('hog', { mode: 'plain' })).response.statusCode, 200);
    assert.equal(await counter('kennel_function_invocations_total', 'function="spinner",outcome="timeout"'), 1);
  });

  it('reports handlers that fail to load, without stopping the gateway from starting', async () => {
    await createFunction(ws, 'broken', { endpoint: 'dogs', handler: fixture('broken.ts'), provisionedConcurrency: 1 }, by);
    await gateway.sync(); // the provisioned instance cannot start; sync still completes
    const e = await rejection(gateway.invoke('broken', {}));
    assert.equal(e.status, 502);
    assert.match(e.message, /could not start: this module fails while loading/);
    await createFunction(ws, 'plain-js', { endpoint: 'dogs', handler: fixture('plain.mjs') }, by);
    const plain = await gateway.invoke('plain-js', { a: 1 });
    assert.deepEqual([plain.response.statusCode, plain.response.body], [201, 'plain js got {"a":1}']);
  });
});

describe('concurrency', () => {
  it('throttles calls over the reserved concurrency with 429 and Retry-After: not queued, not dropped', async () => {
    await createFunction(ws, 'narrow', { endpoint: 'dogs', handler: fixture('handler.ts'), reservedConcurrency: 2 }, by);
    await gateway.invoke('narrow', { mode: 'plain' }); // one warm instance
    const results = await Promise.allSettled([0, 1, 2, 3].map(() => gateway.invoke('narrow', { mode: 'sleep', ms: 400 })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const throttled = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 2, 'exactly the reserved number ran');
    assert.equal(throttled.length, 2);
    for (const t of throttled) {
      assert.ok(t.reason instanceof ThrottledError);
      assert.equal(t.reason.status, 429);
      assert.equal(t.reason.retryAfterSeconds, 1);
      assert.match(t.reason.message, /concurrency limit \(2 concurrent executions\)/);
    }
    assert.equal(await counter('kennel_function_throttles_total', 'function="narrow"'), 2);
    // capacity is back once the running calls finish
    assert.equal((await gateway.invoke('narrow', { mode: 'plain' })).response.statusCode, 200);
    await updateFunction(ws, 'narrow', { reservedConcurrency: 0 }, by);
    assert.match((await rejection(gateway.invoke('narrow', { mode: 'plain' }))).message, /reserved concurrency 0/);
  });

  it('provisioned instances are warm before the first call; on-demand ones start during it', async () => {
    await createFunction(ws, 'on-demand', { endpoint: 'dogs', handler: fixture('handler.ts') }, by);
    await createFunction(ws, 'provisioned', { endpoint: 'dogs', handler: fixture('handler.ts'), provisionedConcurrency: 1, reservedConcurrency: 2 }, by);
    await gateway.start(); // starts provisioned instances and waits for them
    const cold = await gateway.invoke('on-demand', { mode: 'plain' });
    const warm = await gateway.invoke('provisioned', { mode: 'plain' });
    const again = await gateway.invoke('on-demand', { mode: 'plain' });
    assert.equal(cold.coldStart, true);
    assert.ok(cold.initMs! > 0);
    assert.equal(warm.coldStart, false);
    assert.equal(warm.initMs, undefined);
    assert.equal(again.coldStart, false, 'the on-demand instance stays warm after its first call');
    assert.equal(await counter('kennel_function_cold_starts_total', 'function="on-demand"'), 1);
    assert.equal(await counter('kennel_function_cold_starts_total', 'function="provisioned"'), 0);
    assert.equal(await counter('kennel_function_init_duration_seconds_count', 'function="provisioned",kind="provisioned"'), 1);
    console.log(`first call: on-demand ${cold.durationMs.toFixed(1)} ms (instance start ${cold.initMs!.toFixed(1)} ms), provisioned ${warm.durationMs.toFixed(1)} ms; warm on-demand ${again.durationMs.toFixed(1)} ms`);
    // a new revision gets fresh instances: its first call is cold unless provisioned
    await updateFunction(ws, 'on-demand', { timeoutMs: 5000 }, by);
    assert.equal((await gateway.invoke('on-demand', { mode: 'plain' })).coldStart, true);
  });
});
