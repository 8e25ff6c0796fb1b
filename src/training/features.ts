import type { Backbone, CropView } from '../backbones/index.js';
import type { ProgressSink } from '../core/progress.js';
import { Rng, seedFrom } from '../core/rng.js';
import type { DatasetItem, DatasetVersion, Split } from '../data/index.js';
import { imagePath } from '../data/index.js';
import { sha256, type Workspace } from '../store/index.js';
import type { FeatureExtractor } from './extract.js';

/** Rows per cached chunk: the unit of resumption and of work for parallel workers. */
export const CHUNK_ROWS = 256;
/** Batch size inside a chunk; fixed so features are bit-identical however chunks are spread. */
export const EXTRACT_BATCH = 16;

export interface FeatureRequest {
  dataset: DatasetVersion;
  backbone: Backbone;
  split: Split;
  /** 0 = centre crop; 1.. = seeded random-resized-crop + flip views */
  view: number;
  seed: number;
}

export interface FeatureMatrix {
  data: Float32Array;
  rows: number;
  cols: number;
  labels: Int32Array;
  items: DatasetItem[];
  /** chunks reused from the cache (0 = all computed now) */
  cachedChunks: number;
  /** images run through the backbone by this call */
  computedRows: number;
  chunks: number;
}

export function splitItems(ds: DatasetVersion, split: Split): DatasetItem[] {
  return ds.items.filter((i) => i.split === split);
}

/** Cache key: everything that changes the numbers (data, backbone graph, preprocessing, view). */
export function featureKey(r: FeatureRequest): string {
  return sha256(
    JSON.stringify({
      v: 1,
      manifest: r.dataset.manifestSha,
      extractor: r.backbone.extractorSha,
      preprocess: r.backbone.spec.preprocess,
      split: r.split,
      view: r.view,
      seed: r.view > 0 ? r.seed : undefined,
      chunk: CHUNK_ROWS,
      batch: EXTRACT_BATCH,
    }),
  );
}

/** Deterministic augmentation crop for an item: scale 35-100% of the area, aspect 3/4-4/3, random flip. */
export function augmentView(seed: number, item: DatasetItem, view: number): CropView | undefined {
  if (view === 0) return undefined;
  const rng = new Rng(seedFrom(seed, item.sha256, view));
  const area = rng.uniform(0.35, 1);
  const ratio = Math.exp(rng.uniform(Math.log(3 / 4), Math.log(4 / 3)));
  const width = Math.min(1, Math.sqrt(area * ratio));
  const height = Math.min(1, Math.sqrt(area / ratio));
  return { left: rng.next() * (1 - width), top: rng.next() * (1 - height), width, height, flip: rng.next() < 0.5 };
}

export function missingChunks(ws: Workspace, key: string, rows: number): number[] {
  const have = new Set((ws.db.prepare('SELECT chunk FROM feature_chunks WHERE cache_key = ?').all(key) as Array<{ chunk: number }>).map((r) => r.chunk));
  const out: number[] = [];
  for (let c = 0; c * CHUNK_ROWS < rows; c++) if (!have.has(c) || !chunkPresent(ws, key, c)) out.push(c);
  return out;
}

function chunkPresent(ws: Workspace, key: string, chunk: number): boolean {
  const row = ws.db.prepare('SELECT artifact_sha FROM feature_chunks WHERE cache_key = ? AND chunk = ?').get(key, chunk) as { artifact_sha: string } | undefined;
  return !!row && ws.artifacts.has(row.artifact_sha);
}

/** Computes one chunk and stores it (artifact first, then the DB row, so a crash leaves no dangling row). */
export async function computeChunk(ws: Workspace, extractor: FeatureExtractor, r: FeatureRequest, chunk: number, opts: { signal?: AbortSignal; onImages?: (n: number) => void } = {}): Promise<void> {
  const items = splitItems(r.dataset, r.split).slice(chunk * CHUNK_ROWS, (chunk + 1) * CHUNK_ROWS);
  const inputs = await Promise.all(items.map(async (it) => ({ path: await imagePath(ws, it), view: augmentView(r.seed, it, r.view) })));
  let reported = 0;
  const feats = await extractor.extract(inputs, {
    batchSize: EXTRACT_BATCH,
    signal: opts.signal,
    onBatch: (done) => {
      opts.onImages?.(done - reported);
      reported = done;
    },
  });
  const sha = await ws.artifacts.put(new Uint8Array(feats.buffer, feats.byteOffset, feats.byteLength));
  ws.db.prepare('INSERT OR REPLACE INTO feature_chunks (cache_key, chunk, artifact_sha, rows) VALUES (?, ?, ?, ?)').run(featureKey(r), chunk, sha, items.length);
}

/**
 * Features for one (split, view), computing only the chunks not cached yet. A cancelled run
 * keeps every finished chunk, so the next run resumes where it stopped.
 */
export async function loadOrComputeFeatures(
  ws: Workspace,
  getExtractor: () => Promise<FeatureExtractor>,
  r: FeatureRequest,
  opts: { progress?: ProgressSink; phase?: string; signal?: AbortSignal } = {},
): Promise<FeatureMatrix> {
  const items = splitItems(r.dataset, r.split);
  const key = featureKey(r);
  const missing = missingChunks(ws, key, items.length);
  const chunks = Math.ceil(items.length / CHUNK_ROWS);
  const total = missing.reduce((n, c) => n + Math.min(CHUNK_ROWS, items.length - c * CHUNK_ROWS), 0);
  if (missing.length) {
    const extractor = await getExtractor();
    let done = 0;
    const phase = opts.phase ?? `features ${r.split}`;
    opts.progress?.({ phase, done, total });
    for (const c of missing) {
      await computeChunk(ws, extractor, r, c, {
        signal: opts.signal,
        onImages: (n) => {
          done += n;
          opts.progress?.({ phase, done, total });
        },
      });
    }
  }
  return { ...(await readFeatures(ws, r, items, chunks - missing.length)), computedRows: total };
}

export async function readFeatures(ws: Workspace, r: FeatureRequest, items: DatasetItem[], cachedChunks: number): Promise<Omit<FeatureMatrix, 'computedRows'>> {
  const dim = r.backbone.spec.featureDim;
  const data = new Float32Array(items.length * dim);
  const key = featureKey(r);
  const rows = ws.db.prepare('SELECT chunk, artifact_sha, rows FROM feature_chunks WHERE cache_key = ? ORDER BY chunk').all(key) as Array<{ chunk: number; artifact_sha: string; rows: number }>;
  for (const row of rows) {
    const bytes = await ws.artifacts.get(row.artifact_sha);
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    data.set(new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4), row.chunk * CHUNK_ROWS * dim);
  }
  return { data, rows: items.length, cols: dim, labels: Int32Array.from(items, (i) => i.label), items, cachedChunks, chunks: Math.ceil(items.length / CHUNK_ROWS) };
}
