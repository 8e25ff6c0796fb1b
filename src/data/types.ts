import type { ProgressSink } from '../core/index.js';

export type Split = 'train' | 'valid' | 'test';

/** Splits in manifest order. */
export const SPLITS: readonly Split[] = ['train', 'valid', 'test'];

export interface DatasetItem {
  split: Split;
  /** index into DatasetVersion.classes */
  label: number;
  /** artifact holding the image bytes */
  sha256: string;
  /** path relative to the dataset's root folder, with forward slashes */
  path: string;
  /** size after EXIF orientation, as a model will see it */
  width: number;
  height: number;
}

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface DuplicateGroup {
  sha256: string;
  paths: string[];
  /** more than one split here means leakage: the same image is trained on and evaluated on */
  splits: Split[];
}

/** How the source was organised: split folders kept as given, or class folders split by Kennel. */
export type Layout = 'splits' | 'flat';

export interface ImportReport {
  layout: Layout;
  images: Record<Split, number>;
  /** per split, images per class (index = label) */
  classCounts: Record<Split, number[]>;
  skipped: SkippedFile[];
  /** leakage across splits and duplicates within a split */
  duplicates: DuplicateGroup[];
  /** over the train split; ratio = max/min, null when a class has no training image */
  imbalance: { min: number; max: number; ratio: number | null; smallest: string[] };
  /** true when nothing changed and the existing version was returned */
  reused: boolean;
  /** images that were new to the workspace's artifact store */
  copiedFiles: number;
}

export interface DatasetVersion {
  dataset: string;
  version: number;
  /** display names, index = label */
  classes: string[];
  items: DatasetItem[];
  manifestSha: string;
  source: string;
  report: ImportReport;
  createdAt: string;
}

export interface DatasetSummary {
  name: string;
  versions: number;
  latest: number;
  classes: number;
  images: Record<Split, number>;
}

export interface ImportOptions {
  name: string;
  /** train/valid/test fractions for a flat layout, default [0.8, 0.1, 0.1] */
  split?: [number, number, number];
  /** seed of the flat-layout split, default 0 */
  seed?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** images with more pixels are skipped before decoding, default 100 megapixels */
  maxPixels?: number;
  /** larger files are skipped unread, default 50 MB */
  maxBytes?: number;
  /** import files that links point to outside the imported folder (default: skipped and listed) */
  followSymlinks?: boolean;
  /** checks for a zip or URL source */
  expectedSize?: number;
  sha256?: string;
}
