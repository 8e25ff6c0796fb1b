import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { createFunction, eventCounts, FunctionGateway, listFailedEvents, purgeEvents, replayEvents, updateFunction, type EventQueueOptions } from '../../src/functions/index.ts';
import { createKey, ThrottledError, type Actor } from '../../src/security/index.ts';
import { startDaemon } from '../../src/server/index.ts';
import { openWorkspace, type Workspace } from '../../src/store/index.ts';
import { tmpDir, tmpHome } from '../helpers/paths.ts';
import { kennel, kennelJson } from '../foundation/cli.ts';
import { FakeEndpoints } from './fake-endpoint.ts';

/**
 * The asynchronous-invocation queue: bounded (429 when full), retried with backoff, then the
 * failure list that can be replayed and purged. The flood with a kill -9 of the daemon is in
 * events-daemon.test.ts.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const handler = path.join(here, 'fixtures/events.mjs');
const by: Actor = { principal: 'local:test', plane: 'cli' };
const FAST: EventQueueOptions = { pollMs: 20, retryDelayMs: 20, throttleDelayMs: 20, maxThrottleDelayMs: 200, closeGraceMs: 2000 };

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

async function until(what: string, done: () => boolean, ms = 20_000): Promise<void> {
  const limit = Date.now() + ms;
  while (!done()) {
    if (Date.now() > limit) assert.fail(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

async function metric(registry: Registry, name: string, labels: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const home = tmpHome();
let ws: Workspace;
before(async () => {
  ws = openWorkspace(home);
  for (const name of ['a', 'b', 'flaky', 'off']) await createFunction(ws, name, { endpoint: 'dogs', handler }, by);
});
after(() => ws.close());

describe('the asynchronous invocation queue', () => {
  it('stores events before acknowledging them, and refuses with 429 once full (per function, in all, by bytes), failed events included', async () => {
    const registry = new Registry();
    // not started: nothing drains, so the queue only fills
    const gateway = new FunctionGateway({ ws, endpoints: new FakeEndpoints(), registry, events: { maxEventsPerFunction: 3, maxEvents: 5, maxBytes: 400 } });
    const ids = [1, 2, 3].map((n) => gateway.events.enqueue('a', json({ n }), `req-${n}`));
    assert.equal(new Set(ids).size, 3);
    assert.deepEqual(eventCounts(ws, 'a'), { queued: 3, running: 0, failed: 0 });
    const refuse = (fn: string, bytes: Uint8Array, pattern: RegExp) => assert.throws(() => gateway.events.enqueue(fn, bytes, 'req-x'), (e: unknown) => e instanceof ThrottledError && e.status === 429 && pattern.test(e.message));
    refuse('a', json({ n: 4 }), /queue of function a is full \(3 events/);
    gateway.events.enqueue('b', json({ n: 1 }), 'req-b1');
    refuse('b', json({ n: 2, pad: 'x'.repeat(400) }), /asynchronous queue is full/);
    gateway.events.enqueue('b', json({ n: 2 }), 'req-b2');
    refuse('b', json({ n: 3 }), /asynchronous queue is full \(5 events/);
    assert.equal(await metric(registry, 'kennel_function_events_rejected_total', 'function="a"'), 1);
    assert.equal(await metric(registry, 'kennel_function_events_accepted_total', 'function="b"'), 2);
    assert.equal(await metric(registry, 'kennel_function_events', 'function="a",status="queued"'), 3);
    // a failed event still takes its place until it is purged
    ws.db.prepare(`UPDATE function_events SET status = 'failed', failed_at = 1 WHERE function = 'a'`).run();
    refuse('a', json({ n: 4 }), /queue of function a is full/);
    assert.equal(purgeEvents(ws, 'a'), 3);
    assert.equal(purgeEvents(ws, 'b'), 0, 'only failed events are purged');
    gateway.events.enqueue('a', json({ n: 4 }), 'req-4');
    ws.db.exec('DELETE FROM function_events');
    await gateway.close();
  });

  it('retries a failing event with backoff, lists it as failed after 1 + maxRetries runs, and replays it', async () => {
    const dir = tmpDir();
    writeFileSync(path.join(dir, 'fail'), '');
    const registry = new Registry();
    const gateway = new FunctionGateway({ ws, endpoints: new FakeEndpoints(), registry, events: FAST });
    await gateway.start();
    try {
      const id = gateway.events.enqueue('flaky', json({ n: 1, dir }), 'req-flaky');
      await until('the event failed', () => listFailedEvents(ws, 'flaky').length === 1);
      const [failed] = listFailedEvents(ws, 'flaky');
      assert.equal(failed!.id, id);
      assert.equal(failed!.requestId, 'req-flaky');
      assert.equal(failed!.attempts, 3, 'Lambda default: 2 retries');
      assert.match(failed!.lastError, /event 1 failed on purpose/);
      // every run saw the same request id, as Lambda's retries do
      assert.deepEqual(readFileSync(path.join(dir, 'run-1'), 'utf8').trim().split('\n'), ['req-flaky', 'req-flaky', 'req-flaky']);
      assert.equal(await metric(registry, 'kennel_function_events_retried_total', 'function="flaky",reason="error"'), 2);
      assert.equal(await metric(registry, 'kennel_function_events_failed_total', 'function="flaky",reason="retries"'), 1);
      assert.equal(await metric(registry, 'kennel_function_events', 'function="flaky",status="failed"'), 1);

      rmSync(path.join(dir, 'fail'));
      assert.throws(() => replayEvents(ws, 'flaky', ['no-such-id']), /no failed event no-such-id/);
      assert.equal(replayEvents(ws, 'flaky', [id]), 1);
      await until('the replayed event ran', () => existsSync(path.join(dir, 'done-1')));
      await until('the replayed event left the queue', () => eventCounts(ws, 'flaky').queued + eventCounts(ws, 'flaky').running === 0);
      assert.deepEqual(listFailedEvents(ws, 'flaky'), []);
    } finally {
      await gateway.close();
    }
  });

  it('retries throttled events without counting them as runs, until they are older than the maximum event age', async () => {
    const dir = tmpDir();
    const gateway = new FunctionGateway({ ws, endpoints: new FakeEndpoints(), registry: new Registry(), events: FAST });
    // switched off: every try is throttled
    await createFunction(ws, 'paused', { endpoint: 'dogs', handler, reservedConcurrency: 0, maxEventAgeSeconds: 1, maxRetries: 0 }, by);
    await gateway.start();
    try {
      gateway.events.enqueue('paused', json({ n: 1, dir }), 'req-paused');
      await until('the event expired', () => listFailedEvents(ws, 'paused').length === 1, 10_000);
      const [failed] = listFailedEvents(ws, 'paused');
      assert.equal(failed!.attempts, 0, 'throttled tries are not runs');
      assert.match(failed!.lastError, /maximum event age \(1s\).*reserved concurrency 0/);
      assert.ok(!existsSync(path.join(dir, 'run-1')));
    } finally {
      await gateway.close();
    }
  });

  it('answers 429 TooManyRequestsException on the Lambda route when the queue is full, and runs what it accepted', async () => {
    const home = tmpHome();
    const dws = openWorkspace(home);
    const dir = tmpDir();
    await createFunction(dws, 'echo', { endpoint: 'dogs', handler, reservedConcurrency: 0 }, by);
    const { key } = createKey(dws, 'app', { allow: ['function:Invoke:function/*'], ratePerSecond: 1000 }, by);
    const daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }), events: { ...FAST, maxEventsPerFunction: 2 } });
    try {
      const invoke = (n: number) =>
        fetch(`http://127.0.0.1:${daemon.state.port}/2015-03-31/functions/echo/invocations`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'x-amz-invocation-type': 'Event' }, body: JSON.stringify({ n, dir }) });
      assert.deepEqual([(await invoke(1)).status, (await invoke(2)).status], [202, 202]);
      const full = await invoke(3);
      assert.equal(full.status, 429);
      assert.equal(full.headers.get('x-amzn-errortype'), 'TooManyRequestsException');
      assert.equal(full.headers.get('retry-after'), '1');
      assert.match(((await full.json()) as { message: string }).message, /queue of function echo is full/);
      const badJson = await fetch(`http://127.0.0.1:${daemon.state.port}/2015-03-31/functions/echo/invocations`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'x-amz-invocation-type': 'Event' }, body: '{"n": ' });
      assert.equal(badJson.status, 400, 'bad JSON is refused before anything is stored');
      assert.equal(eventCounts(dws, 'echo').queued, 2);
      // switched on again: both accepted events run
      await updateFunction(dws, 'echo', { reservedConcurrency: null }, by);
      await until('both events ran', () => existsSync(path.join(dir, 'done-1')) && existsSync(path.join(dir, 'done-2')));
    } finally {
      await daemon.close();
      dws.close();
    }
  });

  it('kennel functions events lists failed events, replays and purges them; create/update take --max-event-age and --max-retries', async () => {
    const dir = tmpDir();
    writeFileSync(path.join(dir, 'fail'), '');
    const created = kennelJson<{ maxEventAgeSeconds: number; maxRetries: number }>(home, ['functions', 'create', 'cli', '--endpoint', 'dogs', '--allow-missing-endpoint', '--handler', handler, '--max-retries', '0', '--max-event-age', '2h']);
    assert.deepEqual([created.maxEventAgeSeconds, created.maxRetries], [7200, 0]);
    const gateway = new FunctionGateway({ ws, endpoints: new FakeEndpoints(), registry: new Registry(), events: FAST });
    await gateway.start();
    const ids = [1, 2].map((n) => gateway.events.enqueue('cli', json({ n, dir }), `req-cli-${n}`));
    await until('both failed', () => listFailedEvents(ws, 'cli').length === 2);
    await gateway.close();

    const listed = kennelJson<{ function: string; queued: number; failed: number; events: Array<{ id: string; requestId: string; attempts: number; lastError: string; failedAt: string }> }>(home, ['functions', 'events', 'cli']);
    assert.deepEqual([listed.function, listed.queued, listed.failed], ['cli', 0, 2]);
    assert.deepEqual(listed.events.map((e) => [e.id, e.requestId, e.attempts]), [[ids[0], 'req-cli-1', 1], [ids[1], 'req-cli-2', 1]]);
    assert.match(listed.events[0]!.lastError, /event 1 failed on purpose/);
    const human = kennel(home, ['functions', 'events', 'cli']);
    assert.match(human.stdout, /cli: 0 queued, 0 running, 2 failed/);
    assert.match(human.stdout, /ID\s+REQUEST ID\s+RECEIVED\s+FAILED\s+ATTEMPTS\s+BYTES\s+LAST ERROR/);
    assert.match(human.stdout, /--replay \[ID\.\.\.\]/);

    assert.equal(kennelJson<{ replayed: number }>(home, ['functions', 'events', 'cli', '--replay', ids[0]!]).replayed, 1);
    assert.deepEqual(eventCounts(ws, 'cli'), { queued: 1, running: 0, failed: 1 });
    assert.equal(kennelJson<{ purged: number }>(home, ['functions', 'events', 'cli', '--purge']).purged, 1);
    assert.deepEqual(eventCounts(ws, 'cli'), { queued: 1, running: 0, failed: 0 });

    const both = kennel(home, ['functions', 'events', 'cli', '--replay', '--purge']);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /--replay or --purge, not both/);
    const unknownId = kennel(home, ['functions', 'events', 'cli', '--purge', 'nope']);
    assert.match(unknownId.stderr, /no failed event nope/);
    assert.match(kennel(home, ['functions', 'events', 'nope']).stderr, /Function nope was not found/);
    assert.match(kennel(home, ['functions', 'update', 'cli', '--max-retries', '3']).stderr, /--max-retries must be at most 2/);
    assert.match(kennel(home, ['functions', 'update', 'cli', '--max-event-age', '7h']).stderr, /--max-event-age must be/);
    assert.match(kennel(home, ['functions', 'events', '--help']).stdout, /--replay \[id\.\.\.\]/);
    ws.db.exec('DELETE FROM function_events');
  });
});
