import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { RequestReader, encodeRequest } from '../../src/serving/protocol.js';

test('requests survive any split of the stream into chunks', () => {
  const requests: Array<{ id: number; topK: number; requestId: string; tensor: boolean; explain?: boolean; features?: boolean; image: Buffer }> = [
    { id: 1, topK: 5, requestId: 'a-1', tensor: false, image: randomBytes(100_000) },
    { id: 2, topK: 1000, requestId: '', tensor: true, image: randomBytes(3) },
    { id: 3, topK: 3, requestId: 'cap', tensor: false, features: true, image: randomBytes(50) },
    { id: 6, topK: 3, requestId: 'explain', tensor: false, explain: true, image: randomBytes(3) },
    { id: 7, topK: 3, requestId: 'all', tensor: true, explain: true, features: true, image: randomBytes(9) },
    { id: 4_000_000_000, topK: 0, requestId: 'x'.repeat(128), tensor: false, image: randomBytes(70_000) },
    { id: 5, topK: 0, requestId: 'oip/0', tensor: true, image: randomBytes(602_112) },
  ];
  const stream = Buffer.concat(requests.flatMap((r) => encodeRequest(r, r.image)));
  for (const chunkSize of [1, 7, 11, 4096, 65_536, stream.length]) {
    const reader = new RequestReader();
    const got = [];
    for (let i = 0; i < stream.length; i += chunkSize) got.push(...reader.push(stream.subarray(i, i + chunkSize)));
    assert.equal(got.length, requests.length, `chunks of ${chunkSize}`);
    got.forEach((g, i) => {
      const want = requests[i]!;
      assert.deepEqual([g.id, g.topK, g.requestId, g.tensor, g.explain, g.features], [want.id, want.topK, want.requestId, want.tensor, want.explain ?? false, want.features ?? false]);
      assert.ok(g.image.equals(want.image), `image ${i} with chunks of ${chunkSize}`);
    });
  }
});

test('an image that arrives in one chunk is handed on without a copy', () => {
  const image = randomBytes(1000);
  const chunk = Buffer.concat(encodeRequest({ id: 9, topK: 3, requestId: 'r', tensor: false }, image));
  const [r] = new RequestReader().push(chunk);
  assert.equal(r!.image.buffer, chunk.buffer);
});
