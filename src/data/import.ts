import { posix, relative, sep } from 'node:path';
import { Errors, KennelError, silent, type ProgressSink } from '../core/index.js';
import { LocalArtifactStore, type Workspace } from '../store/index.js';
import { findVersion, recordVersion, validateDatasetName } from './catalog.js';
import { checkImages } from './check-pool.js';
import { DEFAULT_LIMITS, tooLargeReason, type ImageLimits } from './images.js';
import { byString, displayName, scanDataset, type Candidate, type Scan } from './layout.js';
import { countImages, findDuplicates, imbalance } from './report.js';
import { prepareSource, type PreparedSource } from './source.js';
import { assignSplits, DEFAULT_SPLIT, validateSplit, type SplitFractions } from './split.js';
import { SPLITS, type DatasetItem, type DatasetVersion, type ImportOptions, type ImportReport, type SkippedFile } from './types.js';

/** The manifest stored as an artifact: everything that defines a version's content. */
interface Manifest {
  format: 1;
  classes: string[];
  items: DatasetItem[];
}

/**
 * Imports a folder, zip file or URL of a zip as a new version of dataset `opts.name`. Every file
 * is checked (unreadable ones are skipped with a reason); the images go into the artifact store,
 * and the version row is written last, in one transaction, so a failed or cancelled import
 * leaves no half version. When the content is the same as the latest version's, that version is
 * returned (report.reused) and no new one is made.
 */
export async function importDataset(ws: Workspace, source: string, opts: ImportOptions): Promise<DatasetVersion> {
  const name = validateDatasetName(opts.name);
  const fractions = validateSplit(opts.split ?? DEFAULT_SPLIT);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw Errors.InvalidRequest(`the seed ${seed} is not a whole number of 0 or more.`, 'Use for example --seed 0.');
  const limits: ImageLimits = { maxBytes: opts.maxBytes ?? DEFAULT_LIMITS.maxBytes, maxPixels: opts.maxPixels ?? DEFAULT_LIMITS.maxPixels };
  const progress = opts.progress ?? silent;

  const prepared = await prepareSource(ws, source, { progress, signal: opts.signal, expectedSize: opts.expectedSize, sha256: opts.sha256, maxBytes: limits.maxBytes });
  let succeeded = false;
  try {
    const scan = await scanDataset(prepared.dir, { followSymlinks: opts.followSymlinks });
    const checked = await checkAndStore(ws, scan.candidates, limits, progress, opts.signal);
    const { classes, items, leftOut } = labelAndSplit(scan, checked.usable, fractions, seed);
    const skipped = [...scan.skipped, ...oversizedInZip(prepared, scan, limits), ...checked.skipped, ...leftOut];
    const ordered = sortItems(items);
    if (ordered.length === 0 || !ordered.some((i) => i.split === 'train')) throw noTrainingImages(source, ordered.length, skipped);

    const counts = countImages(ordered, classes.length);
    const report: ImportReport = {
      layout: scan.layout,
      ...counts,
      skipped: skipped.sort((a, b) => byString(a.path, b.path)),
      duplicates: findDuplicates(ordered),
      imbalance: imbalance(counts.classCounts.train, classes),
      reused: false,
      copiedFiles: checked.copied,
    };
    const manifest: Manifest = { format: 1, classes, items: ordered.map(canonicalItem) };
    const manifestSha = await ws.artifacts.put(Buffer.from(JSON.stringify(manifest)));
    const { record, reused } = recordVersion(ws, { dataset: name, manifestSha, source: prepared.source, classes, report });
    succeeded = true;
    return { ...record, items: manifest.items, report: { ...report, reused } };
  } finally {
    prepared.release(succeeded);
  }
}

/** Reads a version (the latest when `version` is omitted) with its items. */
export async function getDatasetVersion(ws: Workspace, name: string, version?: number): Promise<DatasetVersion> {
  const record = findVersion(ws, name, version);
  const manifest = JSON.parse(Buffer.from(await ws.artifacts.get(record.manifestSha)).toString('utf8')) as Manifest;
  return { ...record, classes: manifest.classes, items: manifest.items };
}

/** A local file with the item's image bytes. */
export function imagePath(ws: Workspace, item: DatasetItem): Promise<string> {
  return ws.artifacts.localPath(item.sha256);
}

interface StoredImage {
  candidate: Candidate;
  sha: string;
  width: number;
  height: number;
}

/** stored images whose bytes are flushed together while the checks go on */
const FLUSH_BATCH = 512;

/** Checks every candidate (bounded concurrency) and stores the good ones; `copied` counts blobs new to the store. */
async function checkAndStore(
  ws: Workspace,
  candidates: Candidate[],
  limits: ImageLimits,
  progress: ProgressSink,
  signal: AbortSignal | undefined,
): Promise<{ usable: StoredImage[]; skipped: SkippedFile[]; copied: number }> {
  const seen = new Set<string>();
  /** blobs a check worker reports it wrote */
  const written = new Set<string>();
  const skipped: SkippedFile[] = [];
  let copied = 0;
  let done = 0;
  progress({ phase: 'check images', done, total: candidates.length });
  await ws.artifacts.preload?.(candidates.length);
  const results: Array<StoredImage | undefined> = [];
  // the stored files' bytes are flushed in batches while the checks go on (an import's last
  // seconds went on flushing them all), their folders once at the end
  const flushes: Promise<void>[] = [];
  let unflushed: string[] = [];
  const flush = () => {
    if (!unflushed.length || !ws.artifacts.sync) return;
    const flushed = ws.artifacts.sync(unflushed, { only: 'bytes' });
    flushed.catch(() => {}); // awaited below: this only keeps a failure before then from going unhandled
    flushes.push(flushed);
    unflushed = [];
  };
  await checkImages(
    candidates.map((c) => c.absPath),
    limits,
    async (i, check) => {
      const candidate = candidates[i]!;
      progress({ phase: 'check images', done: ++done, total: candidates.length });
      if (!check.ok) {
        skipped.push({ path: candidate.path, reason: check.reason });
        return;
      }
      const sha = check.sha256;
      // marked seen before the await, so that a duplicate checked meanwhile is not counted twice
      const firstSeen = !seen.has(sha);
      seen.add(sha);
      if ('stored' in check) {
        // two workers may both have written a duplicate: it is new once
        if (check.stored === 'new' && !written.has(sha)) {
          copied++;
          written.add(sha);
        }
      } else {
        if (firstSeen && !(await ws.artifacts.has(sha))) copied++;
        // durable all at once below, before anything records them
        await ws.artifacts.put(check.bytes, { durable: false });
      }
      results[i] = { candidate, sha, width: check.width, height: check.height };
      unflushed.push(sha);
      if (unflushed.length >= FLUSH_BATCH) flush();
    },
    // check workers put the images into a store on this machine themselves, not yet durable either
    { signal, store: ws.artifacts instanceof LocalArtifactStore ? ws.artifacts.root : undefined },
  );
  const usable = results.filter((r): r is StoredImage => r !== undefined);
  flush();
  await Promise.all(flushes);
  await ws.artifacts.sync?.(usable.map((u) => u.sha), { only: 'names' });
  return { usable, skipped, copied };
}

/**
 * Numbers the classes (class folders with at least one usable image, in sorted folder order) and
 * gives every image its split: the folder's in a split layout, a stratified one in a flat layout.
 */
function labelAndSplit(scan: Scan, usable: StoredImage[], fractions: SplitFractions, seed: number): { classes: string[]; items: DatasetItem[]; leftOut: SkippedFile[] } {
  const withImages = new Set(usable.map((u) => u.candidate.classFolder));
  const folders = scan.classFolders.filter((f) => withImages.has(f));
  const leftOut = scan.classFolders.filter((f) => !withImages.has(f)).map((f) => ({ path: `${f}/`, reason: 'class folder has no usable image; class left out' }));
  const classes = folders.map(displayName);
  const clash = classes.findIndex((c, i) => classes.indexOf(c) !== i);
  if (clash >= 0) {
    const first = folders[classes.indexOf(classes[clash]!)];
    throw Errors.InvalidRequest(`the class folders "${first}" and "${folders[clash]}" both read as the class "${classes[clash]}".`, 'Merge them or rename one.');
  }
  const labelOf = new Map(folders.map((f, i) => [f, i]));
  const unsplit = usable.map(({ candidate, sha, width, height }) => ({
    split: candidate.split,
    label: labelOf.get(candidate.classFolder)!,
    sha256: sha,
    path: candidate.path,
    width,
    height,
  }));
  const items = scan.layout === 'splits' ? unsplit.map((i) => ({ ...i, split: i.split! })) : assignSplits(unsplit, fractions, seed);
  return { classes, items, leftOut };
}

function sortItems(items: DatasetItem[]): DatasetItem[] {
  return [...items].sort((a, b) => SPLITS.indexOf(a.split) - SPLITS.indexOf(b.split) || a.label - b.label || byString(a.path, b.path));
}

/** Fixed key order, so equal content always serialises to the same manifest bytes. */
function canonicalItem(i: DatasetItem): DatasetItem {
  return { split: i.split, label: i.label, sha256: i.sha256, path: i.path, width: i.width, height: i.height };
}

/** Zip entries that were never extracted for being too large, as paths relative to the dataset root. */
function oversizedInZip(prepared: PreparedSource, scan: Scan, limits: ImageLimits): SkippedFile[] {
  const rootPrefix = relative(prepared.dir, scan.root).split(sep).filter(Boolean).join('/');
  return prepared.oversized.map(({ path, bytes }) => ({
    path: rootPrefix && path.startsWith(`${rootPrefix}/`) ? posix.relative(rootPrefix, path) : path,
    reason: tooLargeReason(bytes, limits.maxBytes),
  }));
}

function noTrainingImages(source: string, usable: number, skipped: SkippedFile[]): KennelError {
  const first = skipped[0];
  const example = first ? ` The first skipped file: ${first.path}: ${first.reason}.` : '';
  return Errors.InvalidRequest(
    usable === 0 ? `no usable images were found in ${source}.` : `the train split of ${source} has no usable images.`,
    `${skipped.length} file${skipped.length === 1 ? ' was' : 's were'} skipped.${example} Images go in CLASS/ folders, or in train/, valid/ and test/ folders holding the CLASS/ folders.`,
  );
}
