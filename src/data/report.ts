import { byString } from './layout.js';
import { SPLITS, type DatasetItem, type DuplicateGroup, type ImportReport, type Split } from './types.js';

export function countImages(items: readonly DatasetItem[], classCount: number): Pick<ImportReport, 'images' | 'classCounts'> {
  const images: Record<Split, number> = { train: 0, valid: 0, test: 0 };
  const classCounts: Record<Split, number[]> = { train: zeros(classCount), valid: zeros(classCount), test: zeros(classCount) };
  for (const item of items) {
    images[item.split]++;
    classCounts[item.split][item.label]!++;
  }
  return { images, classCounts };
}

const zeros = (n: number): number[] => new Array<number>(n).fill(0);

/**
 * Groups images with identical bytes. A group spanning splits is leakage (the model is evaluated
 * on an image it trained on); within one split it only over-weights that image.
 */
export function findDuplicates(items: readonly DatasetItem[]): DuplicateGroup[] {
  const bySha = new Map<string, DatasetItem[]>();
  for (const item of items) {
    const group = bySha.get(item.sha256);
    if (group) group.push(item);
    else bySha.set(item.sha256, [item]);
  }
  const groups: DuplicateGroup[] = [];
  for (const [sha256, group] of bySha) {
    if (group.length < 2) continue;
    const splits = SPLITS.filter((s) => group.some((i) => i.split === s));
    groups.push({ sha256, paths: group.map((i) => i.path).sort(byString), splits });
  }
  // leakage first, then by first path, so reports read the same on every run
  return groups.sort((a, b) => Number(b.splits.length > 1) - Number(a.splits.length > 1) || byString(a.paths[0]!, b.paths[0]!));
}

export const isLeak = (d: DuplicateGroup): boolean => d.splits.length > 1;

/** Class balance of the training split. */
export function imbalance(trainCounts: readonly number[], classes: readonly string[]): ImportReport['imbalance'] {
  if (trainCounts.length === 0) return { min: 0, max: 0, ratio: null, smallest: [] };
  const min = Math.min(...trainCounts);
  const max = Math.max(...trainCounts);
  return {
    min,
    max,
    ratio: min > 0 ? Math.round((max / min) * 100) / 100 : null,
    smallest: classes.filter((_, i) => trainCounts[i] === min),
  };
}

/** A class is called small below this share of the largest class's training images. */
const SMALL_CLASS_SHARE = 0.5;

/**
 * The imbalance warning shown with a dataset version: classes without training images, else
 * classes with fewer than half as many training images as the largest one.
 */
export function imbalanceWarning(trainCounts: readonly number[], classes: readonly string[]): { warning: string | null; small: string[] } {
  const max = Math.max(0, ...trainCounts);
  const empty = classes.filter((_, i) => (trainCounts[i] ?? 0) === 0);
  if (empty.length) return { warning: `${empty.length} ${empty.length === 1 ? 'class has' : 'classes have'} no training images.`, small: empty };
  const small = classes.filter((_, i) => (trainCounts[i] ?? 0) < max * SMALL_CLASS_SHARE);
  if (small.length) return { warning: `${small.length} ${small.length === 1 ? 'class has' : 'classes have'} fewer than half as many training images as the largest class (${max}); consider more images or augmentation (kennel train --augment).`, small };
  return { warning: null, small: [] };
}
