#!/usr/bin/env node
// CommonJS on purpose (bin/package.json): image decoding runs on libuv's thread pool, whose size
// is read once, when the pool first starts, and an ES module entry starts it while loading. This
// process's pool gets a thread per core (decoding for `predict` and single-process extraction);
// the variable is then cleared, so the processes it starts keep their own settings.
const { availableParallelism } = require('node:os');
const { existsSync, stat } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

if (!process.env.UV_THREADPOOL_SIZE) {
  process.env.UV_THREADPOOL_SIZE = String(Math.max(4, availableParallelism()));
  stat(__filename, () => {}); // starts the pool now, with that size
  delete process.env.UV_THREADPOOL_SIZE;
}
const main = join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error('error: Kennel is not built yet. Run `npm ci` (or `npm run build`) in the Kennel folder first.');
  process.exit(1);
}
import(pathToFileURL(main).href);
