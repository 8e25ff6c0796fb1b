import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { startDaemon, type Daemon } from '../../src/server/index.js';
import { openAsyncRequests, type AsyncRequestList, type AsyncRequestStatus, type AsyncRequestStore } from '../../src/serving/index.js';
import type { Workspace } from '../../src/store/index.js';
import { kennelBin } from '../foundation/cli.js';
import { tmpHome } from '../helpers/paths.js';
import { hasRedis, NO_REDIS, startProcess, startRedis } from '../workers/helpers.ts';
import { bearer, invokeKey, photo, waitFor, workspaceWithModel } from './fixtures.js';

/**
 * The Redis engine of asynchronous inference (kennel up --queue redis://...): the same routes,
 * outputs and CLI as the SQLite queue, with the requests in BullMQ on a real redis-server.
 */
let redis: Awaited<ReturnType<typeof startRedis>>;
let home: string;
let ws: Workspace;
let daemon: Daemon;
let base: string;
let key: string;
let location: string;
let notImage: string;
let expectedTop: string;
/** the requests in Redis, read as the CLI reads them */
let requests: AsyncRequestStore;

async function start(): Promise<void> {
  daemon = await startDaemon({ home, port: 0, adminPort: 0, log: pino({ level: 'silent' }), asyncInference: { queue: redis.url, retryDelayMs: 50, throttleDelayMs: 20, pollMs: 50, closeGraceMs: 0 } });
  base = `http://127.0.0.1:${daemon.state.port}`;
}

const post = (input: string, headers: Record<string, string> = {}) =>
  fetch(`${base}/endpoints/dogs/async-invocations?topK=1`, { method: 'POST', headers: { ...bearer(key), 'x-amzn-sagemaker-inputlocation': input, ...headers } });

async function submit(input: string): Promise<string> {
  const res = await post(input);
  assert.equal(res.status, 202);
  return ((await res.json()) as { InferenceId: string }).InferenceId;
}

const finished = (ids: string[], timeoutMs = 45_000) =>
  waitFor(`${ids.length} requests finished`, async () => {
    const all = await Promise.all(ids.map((id) => requests.status('dogs', id)));
    return all.every((s) => s?.status === 'completed' || s?.status === 'failed') ? (all as AsyncRequestStatus[]) : undefined;
  }, timeoutMs);

/** The CLI, without blocking this process's event loop (where the daemon runs), with the daemon's queue in KENNEL_QUEUE. */
function kennelJson<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kennelBin, ...args, '--json'], { env: { ...process.env, KENNEL_HOME: home, KENNEL_QUEUE: redis.url } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(stdout) as T) : reject(new Error(`kennel ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}

describe('asynchronous inference on Redis', { skip: !hasRedis && NO_REDIS }, () => {
  before(async () => {
    redis = await startRedis();
    home = tmpHome();
    ws = await workspaceWithModel(home);
    key = invokeKey(ws);
    requests = await openAsyncRequests(ws, { queue: redis.url });
    await start();
    await daemon.runtime.create({ name: 'dogs', variants: [{ name: 'primary', model: 'mnet' }], instances: 1 });
    location = `kennel://artifacts/${await ws.artifacts.put(photo())}`;
    notImage = `kennel://artifacts/${await ws.artifacts.put(Buffer.from('not an image'))}`;
    const sync = await fetch(`${base}/endpoints/dogs/invocations?topK=1`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...bearer(key) }, body: photo() });
    expectedTop = ((await sync.json()) as { predictions: Array<{ label: string }> }).predictions[0]!.label;
  });

  after(async () => {
    await daemon?.close();
    await requests?.close();
    ws?.close();
    await redis?.stop();
  });

  test('24 requests complete, their outputs download as with SQLite, and the backlog drains to 0', async () => {
    const ids = await Promise.all(Array.from({ length: 24 }, () => submit(location)));
    const done = await finished(ids);
    assert.deepEqual(done.filter((s) => s.status !== 'completed').map((s) => s.lastError), []);
    const output = await fetch(`${base}/endpoints/dogs/async-invocations/${ids[0]}/output`, { headers: bearer(key) });
    assert.equal(((await output.json()) as { predictions: Array<{ label: string }> }).predictions[0]!.label, expectedTop);
    const downloaded = await kennelJson<{ predictions: Array<{ label: string }> }>(['artifacts', 'download', done[23]!.outputLocation]);
    assert.equal(downloaded.predictions[0]!.label, expectedTop);
    await waitFor('the backlog at 0', () => daemon.asyncInference.depth('dogs') === 0);
    assert.equal((await fetch(`${base}/endpoints/cats/async-invocations/${ids[0]}`, { headers: bearer(key) })).status, 404);
  });

  test('a failing input goes to the failed list; kennel endpoints requests lists, replays and purges it', async () => {
    const id = await submit(notImage);
    const [failed] = await finished([id]);
    assert.equal(failed!.status, 'failed');
    assert.match(failed!.lastError!, /not a JPEG/);
    const listed = await kennelJson<AsyncRequestList>(['endpoints', 'requests', 'dogs']);
    const item = listed.failed.find((f) => f.id === id)!;
    assert.equal(item.attempts, 1, 'a bad input is not retried');
    assert.ok(listed.counts.completed >= 24);
    assert.ok(listed.recent.some((r) => r.id === id));
    assert.deepEqual(await kennelJson(['endpoints', 'requests', 'dogs', '--replay', id]), { endpoint: 'dogs', replayed: 1 });
    // it ran again (and failed again: the input is still not an image)
    const again = await waitFor('the replayed run', async () => {
      const f = (await requests.list('dogs', 0)).failed.find((x) => x.id === id);
      return f && f.failedAt > item.failedAt ? f : undefined;
    });
    assert.equal(again.attempts, 1);
    assert.deepEqual(await kennelJson(['endpoints', 'requests', 'dogs', '--purge']), { endpoint: 'dogs', purged: 1 });
    assert.equal((await requests.list('dogs', 0)).counts.failed, 0);
  });

  test('a daemon closed mid-queue and started again loses no request', async () => {
    const ids = await Promise.all(Array.from({ length: 30 }, () => submit(location)));
    await daemon.close();
    const left = (await requests.list('dogs', 0)).counts;
    assert.ok(left.queued + left.running > 0, 'the restart has requests to finish');
    await start();
    const done = await finished(ids);
    assert.deepEqual(done.filter((s) => s.status !== 'completed').map((s) => s.lastError), [], `left at the restart: ${JSON.stringify(left)}`);
  });

  test('requests running when their daemon is killed (kill -9) run again once their locks expire', async () => {
    const store = await openAsyncRequests(ws, { queue: redis.url, lockMs: 1000 });
    const request = { endpoint: 'crash', requestId: 'test', payload: { input: location, topK: 1 } };
    const ids = await Promise.all(Array.from({ length: 5 }, () => store.accept(request)));
    // a daemon of its own takes them and is killed while they run
    const doomed = startProcess(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'async-redis-crash.ts'), home, redis.url, 'crash']);
    await doomed.waitFor(/running/, 20_000);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const ran: string[] = [];
    await store.start({ has: () => true, run: async (r) => (ran.push(r.id), 'answer'), completed: () => {}, failed: () => {} });
    try {
      const all = await waitFor('every request run again', async () => {
        const states = await Promise.all(ids.map((id) => store.status('crash', id)));
        return states.every((s) => s?.status === 'completed') ? states : undefined;
      }, 20_000);
      assert.equal(all.length, 5);
      assert.deepEqual([...new Set(ran)].sort(), [...ids].sort());
    } finally {
      await store.close();
    }
  });

  test('bounded per endpoint (429 when full) and an inference id is used once (409)', async () => {
    assert.equal((await post(location, { 'x-amzn-sagemaker-inference-id': 'once:1' })).status, 202);
    assert.equal((await post(location, { 'x-amzn-sagemaker-inference-id': 'once:1' })).status, 409);
    // a store of its own with a bound of 2, for an endpoint no daemon runs
    const small = await openAsyncRequests(ws, { queue: redis.url, maxItemsPerOwner: 2 });
    try {
      const request = { endpoint: 'bounded', requestId: 'test', payload: { input: location, topK: 1 } };
      await small.accept(request);
      await small.accept(request);
      await assert.rejects(small.accept(request), (e: Error & { status?: number }) => e.status === 429 && /queue of endpoint bounded is full \(2 requests/.test(e.message));
    } finally {
      await small.close();
    }
  });
});
