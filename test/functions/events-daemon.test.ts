import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createFunction, eventCounts, type FailedEvent } from '../../src/functions/index.ts';
import { createKey, type Actor } from '../../src/security/index.ts';
import { isAlive } from '../../src/server/index.ts';
import { openWorkspace } from '../../src/store/index.ts';
import { kennel, kennelJson } from '../foundation/cli.ts';
import { tmpDir, tmpHome } from '../helpers/paths.ts';

/**
 * An Event flood on Lambda's Invoke API of a real daemon (`kennel up --detach`), killed with
 * SIGKILL in the middle and started again: every event answered 202 runs (at least once) or is
 * listed by `kennel functions events`, none is lost.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const handler = path.join(here, 'fixtures/events.mjs');
const by: Actor = { principal: 'local:test', plane: 'cli' };
const home = tmpHome();
const dir = tmpDir();
let pid: number | undefined;

after(() => {
  if (pid && isAlive(pid)) kennel(home, ['down']);
});

const up = (...flags: string[]) => kennelJson<{ pid: number; port: number }>(home, ['up', '--detach', '--port', '0', '--admin-port', '0', ...flags]);

describe('asynchronous invocations across a daemon crash', () => {
  it('runs or lists every accepted event of a flood, with a kill -9 of the daemon in the middle', async () => {
    const ws = openWorkspace(home);
    await createFunction(ws, 'flood', { endpoint: 'dogs', handler, reservedConcurrency: 2 }, by);
    const { key } = createKey(ws, 'app', { allow: ['function:Invoke:function/flood'], ratePerSecond: 1000, burst: 1000 }, by);
    const accepted = new Set<number>();
    let daemon = up();
    pid = daemon.pid;

    const post = (port: number, event: unknown) =>
      fetch(`http://127.0.0.1:${port}/2015-03-31/functions/flood/invocations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'x-amz-invocation-type': 'Event' },
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(10_000),
      });
    const send = async (n: number, port: number) => {
      try {
        const res = await post(port, { n, dir, ms: 300 });
        if (res.status === 202) accepted.add(n);
        else assert.fail(`event ${n} answered ${res.status}`);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        // the daemon died under this request: it was not accepted
      }
    };
    const done = (n: number) => existsSync(path.join(dir, `done-${n}`));

    // four senders until the daemon is killed, once some events ran and a backlog waits
    let next = 0;
    let runningAtKill = -1;
    const killer = (async () => {
      const limit = Date.now() + 60_000;
      while (!([...accepted].filter(done).length >= 2 && eventCounts(ws, 'flood').queued >= 10)) {
        if (Date.now() > limit) assert.fail('no backlog formed within 60 s');
        await sleep(10);
      }
      process.kill(daemon.pid, 'SIGKILL');
      while (isAlive(daemon.pid)) await sleep(10);
      runningAtKill = eventCounts(ws, 'flood').running;
    })();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (runningAtKill < 0 && next < 400) await send(next++, daemon.port);
      }),
    );
    await killer;
    assert.ok(runningAtKill > 0, 'events were running when the daemon died');
    const acceptedBeforeCrash = accepted.size;

    // the flood goes on after the restart, with a queue of at most 1 MiB of payloads
    daemon = up('--max-queued-mib', '1');
    pid = daemon.pid;
    for (let i = 0; i < 10; i++) await send(next++, daemon.port);
    assert.equal(accepted.size, acceptedBeforeCrash + 10);

    const limit = Date.now() + 60_000;
    for (;;) {
      const c = eventCounts(ws, 'flood');
      if (c.queued + c.running === 0) break;
      if (Date.now() > limit) assert.fail(`still ${JSON.stringify(c)} after 60 s`);
      await sleep(100);
    }
    const tooBig = await post(daemon.port, { n: -1, dir, pad: 'x'.repeat(1024 ** 2) });
    assert.equal(tooBig.status, 429, 'kennel up --max-queued-mib bounds the queue');
    assert.equal(tooBig.headers.get('x-amzn-errortype'), 'TooManyRequestsException');
    const listed = kennelJson<{ queued: number; running: number; failed: number; events: FailedEvent[] }>(home, ['functions', 'events', 'flood']);
    assert.deepEqual([listed.queued, listed.running, listed.failed, listed.events], [0, 0, 0, []]);
    const lost = [...accepted].filter((n) => !done(n));
    assert.deepEqual(lost, [], 'every accepted event ran');
    // the events running at the crash ran again after it (at-least-once delivery)
    const runs = [...accepted].map((n) => readFileSync(path.join(dir, `run-${n}`), 'utf8').trim().split('\n').length);
    assert.ok(runs.filter((r) => r > 1).length <= runningAtKill, `runs per event: ${runs.join(',')}`);
    ws.close();
    assert.equal(kennel(home, ['down']).code, 0);
  });
});
