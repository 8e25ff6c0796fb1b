import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { openWorkspace } from '../../src/store/index.js';
import { CHUNK_ROWS, missingChunks, recordChunk } from '../../src/training/index.js';
import { tmpHome } from '../helpers/paths.js';

test('a cached feature chunk whose blob is gone from the artifact store is extracted again', async () => {
  const ws = openWorkspace(tmpHome());
  try {
    const rows = 3 * CHUNK_ROWS;
    assert.deepEqual(await missingChunks(ws, 'k', rows), [0, 1, 2]);
    const shas = await Promise.all([0, 1].map((c) => ws.artifacts.put(new Uint8Array([c, 1, 2, 3]))));
    shas.forEach((sha, c) => recordChunk(ws, 'k', c, sha, CHUNK_ROWS));
    assert.deepEqual(await missingChunks(ws, 'k', rows), [2]);
    rmSync(await ws.artifacts.localPath(shas[1]!));
    assert.equal(await ws.artifacts.has(shas[1]!), false);
    assert.deepEqual(await missingChunks(ws, 'k', rows), [1, 2]);
  } finally {
    ws.close();
  }
});
