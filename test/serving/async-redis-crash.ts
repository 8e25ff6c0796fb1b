/**
 * For the kill -9 test of async-redis.test.ts: a daemon's Redis store (HOME, URL) whose runs
 * never finish. It prints "running" once it holds requests; the test then kills it.
 */
import { openAsyncRequests } from '../../src/serving/index.js';
import { openWorkspace } from '../../src/store/index.js';

const [home, url, endpoint] = process.argv.slice(2) as [string, string, string];
const store = await openAsyncRequests(openWorkspace(home), { queue: url, lockMs: 1000 });
await store.start({ has: () => true, run: () => new Promise<string>(() => {}), completed: () => {}, failed: () => {} });
const watch = setInterval(() => {
  void store.list(endpoint, 0).then((l) => {
    if (l.counts.running === 0) return;
    clearInterval(watch);
    process.stdout.write('running\n');
  });
}, 50);
