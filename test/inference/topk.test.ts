import assert from 'node:assert/strict';
import { test } from 'node:test';
import { topIndices } from '../../src/core/index.js';
import { Rng } from '../../src/core/rng.js';

/** The reference: sort every class (score descending, then index ascending). */
const bySorting = (scores: Float32Array, k: number): number[] =>
  Array.from(scores, (s, i) => [s, i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);

test('top-k selection equals sorting every class, ties included', () => {
  const rng = new Rng(7);
  for (const classes of [1, 2, 5, 133, 1000]) {
    for (const k of [1, 3, 5, classes]) {
      if (k > classes) continue;
      // coarse scores (a few distinct values) force ties; fine ones exercise the ordering
      for (const levels of [3, 1e6]) {
        const scores = Float32Array.from({ length: classes }, () => Math.floor(rng.next() * levels) / levels);
        assert.deepEqual(topIndices(scores, k), bySorting(scores, k), `${classes} classes, k=${k}, ${levels} levels`);
      }
    }
  }
});

test('top-k of a sorted or reverse-sorted row', () => {
  const up = Float32Array.from({ length: 50 }, (_, i) => i);
  assert.deepEqual(topIndices(up, 3), [49, 48, 47]);
  assert.deepEqual(topIndices(up.reverse(), 3), [0, 1, 2]);
});
