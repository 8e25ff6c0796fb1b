import { createHash } from 'node:crypto';
import { Errors, KennelError } from '../core/index.js';
import { byString } from './layout.js';
import type { Split } from './types.js';

export type SplitFractions = [number, number, number];

export const DEFAULT_SPLIT: SplitFractions = [0.8, 0.1, 0.1];

/** Checks train/valid/test fractions: three non-negative numbers summing to 1, some for training. */
export function validateSplit(split: readonly number[]): SplitFractions {
  const [train, valid, test] = split;
  const ok =
    split.length === 3 &&
    split.every((x) => Number.isFinite(x) && x >= 0) &&
    train! > 0 &&
    Math.abs(train! + valid! + test! - 1) < 1e-6;
  if (!ok) {
    throw Errors.InvalidRequest(
      `the split ${split.join(',')} is not three fractions for train, valid and test that add up to 1.`,
      'Use for example --split 0.8,0.1,0.1 (train must be above 0).',
    );
  }
  return [train!, valid!, test!];
}

/**
 * Assigns train/valid/test within each class (stratified). An image's place in its class's
 * order depends only on the seed and its path, so the split is reproducible, and adding a file
 * moves at most the images at the split boundaries instead of reshuffling the class.
 */
export function assignSplits<T extends { path: string; label: number }>(items: T[], fractions: SplitFractions, seed: number): Array<T & { split: Split }> {
  const byClass = new Map<number, T[]>();
  for (const item of items) {
    const group = byClass.get(item.label) ?? [];
    group.push(item);
    byClass.set(item.label, group);
  }
  const out: Array<T & { split: Split }> = [];
  for (const group of byClass.values()) {
    const keyed = group.map((item) => ({ item, key: createHash('sha256').update(`${seed}\0${item.path}`).digest('hex') }));
    keyed.sort((a, b) => byString(a.key, b.key) || byString(a.item.path, b.item.path));
    const [nValid, nTest] = splitCounts(group.length, fractions);
    keyed.forEach(({ item }, i) => out.push({ ...item, split: i < nValid ? 'valid' : i < nValid + nTest ? 'test' : 'train' }));
  }
  return out;
}

/**
 * [valid, test] counts for a class of n images: at least one for each part asked for (a small
 * class would otherwise round to none, e.g. 4 images at 0.1 each), training keeping at least one.
 */
function splitCounts(n: number, [, valid, test]: SplitFractions): [number, number] {
  let nValid = valid > 0 ? Math.max(1, Math.round(n * valid)) : 0;
  let nTest = test > 0 ? Math.max(1, Math.round(n * test)) : 0;
  while (n > 0 && n - nValid - nTest < 1) {
    if (nTest >= nValid) nTest--;
    else nValid--;
  }
  return [nValid, nTest];
}
