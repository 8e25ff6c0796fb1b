import { open } from 'node:fs/promises';
import { getBackbone, type Backbone } from '../backbones/index.js';
import type { CropView, FeatureExtractor } from '../inference/index.js';
import { Errors, Rng, mapLimit, seedFrom } from '../core/index.js';
import { getDatasetVersion, type DatasetItem, type DatasetVersion, type Split } from '../data/index.js';
import { sha256, type ArtifactStore, type Workspace } from '../store/index.js';

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
export function augmentView(seed: number, item: Pick<DatasetItem, 'sha256'>, view: number): CropView | undefined {
  if (view === 0) return undefined;
  const rng = new Rng(seedFrom(seed, item.sha256, view));
  const area = rng.uniform(0.35, 1);
  const ratio = Math.exp(rng.uniform(Math.log(3 / 4), Math.log(4 / 3)));
  const width = Math.min(1, Math.sqrt(area * ratio));
  const height = Math.min(1, Math.sqrt(area / ratio));
  return { left: rng.next() * (1 - width), top: rng.next() * (1 - height), width, height, flip: rng.next() < 0.5 };
}

/** Chunks with no recorded feature blob, or whose blob is gone from the artifact store. */
export async function missingChunks(ws: Workspace, key: string, rows: number): Promise<number[]> {
  const recorded = new Map((ws.db.prepare('SELECT chunk, artifact_sha FROM feature_chunks WHERE cache_key = ?').all(key) as Array<{ chunk: number; artifact_sha: string }>).map((r) => [r.chunk, r.artifact_sha]));
  const chunks = Array.from({ length: Math.ceil(rows / CHUNK_ROWS) }, (_, c) => c);
  // asked all at once: against a remote store each is a request
  const present = await Promise.all(chunks.map((c) => (recorded.has(c) ? ws.artifacts.has(recorded.get(c)!) : false)));
  return chunks.filter((c) => !present[c]);
}

export function chunkItems(r: FeatureRequest, chunk: number): DatasetItem[] {
  return splitItems(r.dataset, r.split).slice(chunk * CHUNK_ROWS, (chunk + 1) * CHUNK_ROWS);
}

/**
 * Features of one chunk's images, stored as a raw float32 artifact; returns its sha. Touches
 * only the artifact store, so any worker that sees the same store computes the same bytes.
 */
export async function extractChunk(
  artifacts: ArtifactStore,
  extractor: FeatureExtractor,
  images: Array<Pick<DatasetItem, 'sha256'>>,
  view: { seed: number; view: number },
  opts: { signal?: AbortSignal; onImages?: (n: number) => void } = {},
): Promise<string> {
  const inputs = await Promise.all(images.map(async (it) => ({ path: await artifacts.localPath(it.sha256), view: augmentView(view.seed, it, view.view) })));
  let reported = 0;
  const feats = await extractor.extract(inputs, {
    batchSize: EXTRACT_BATCH,
    signal: opts.signal,
    onBatch: (done) => {
      opts.onImages?.(done - reported);
      reported = done;
    },
  });
  return artifacts.put(new Uint8Array(feats.buffer, feats.byteOffset, feats.byteLength));
}

/** Records a computed chunk; done by the coordinator only, after the artifact exists, so SQLite has one writer and no dangling row. */
export function recordChunk(ws: Workspace, key: string, chunk: number, sha: string, rows: number): void {
  ws.db.prepare('INSERT OR REPLACE INTO feature_chunks (cache_key, chunk, artifact_sha, rows) VALUES (?, ?, ?, ?)').run(key, chunk, sha, rows);
}

/** chunk files read at once: the reads run on the libuv pool */
const READS_AT_ONCE = 8;

/**
 * Assembles a feature matrix from its cached chunks, each at its row offset; every chunk must be
 * there. Each chunk's file is read straight into its rows: a buffer per chunk, copied and dropped,
 * doubled the fresh pages of tens of MB, which cost more than the reading.
 */
export async function readFeatures(ws: Workspace, r: FeatureRequest, items: DatasetItem[], cachedChunks: number): Promise<FeatureMatrix> {
  const dim = r.backbone.spec.featureDim;
  const data = new Float32Array(items.length * dim);
  const key = featureKey(r);
  const chunks = Math.ceil(items.length / CHUNK_ROWS);
  const rows = ws.db.prepare('SELECT chunk, artifact_sha, rows FROM feature_chunks WHERE cache_key = ? ORDER BY chunk').all(key) as Array<{ chunk: number; artifact_sha: string; rows: number }>;
  if (rows.length !== chunks) throw new Error(`feature cache ${key.slice(0, 12)} has ${rows.length} of ${chunks} chunks`);
  await mapLimit(rows, READS_AT_ONCE, async (row) => {
    const expected = Math.min(CHUNK_ROWS, items.length - row.chunk * CHUNK_ROWS);
    const target = new Uint8Array(data.buffer, row.chunk * CHUNK_ROWS * dim * 4, expected * dim * 4);
    const file = await open(await ws.artifacts.localPath(row.artifact_sha), 'r');
    try {
      const { size } = await file.stat();
      if (row.rows !== expected || size !== target.byteLength) throw new Error(`feature chunk ${row.chunk} of ${key.slice(0, 12)} has ${size} bytes, not ${expected} rows of ${dim} floats`);
      for (let at = 0; at < size; ) {
        const { bytesRead } = await file.read(target, at, size - at, at);
        if (!bytesRead) throw new Error(`feature chunk ${row.chunk} of ${key.slice(0, 12)} ended after ${at} of ${size} bytes`);
        at += bytesRead;
      }
    } finally {
      await file.close();
    }
  });
  return { data, rows: items.length, cols: dim, labels: Int32Array.from(items, (i) => i.label), items, cachedChunks, chunks };
}

/** The features a model was trained on, read back from training's feature cache. */
export interface TrainingReference {
  /** the training split's centre-crop features (view 0), rows x cols */
  data: Float32Array;
  rows: number;
  cols: number;
  /** each row's class name */
  labels: string[];
  dataset: string;
  datasetVersion: number;
  backbone: string;
}

/**
 * The training split's backbone features of a Kennel-trained model, from the feature cache its
 * training job filled (found through the model card's lineage: the dataset version and the
 * backbone). Fails when the model was imported, or when the cache or its dataset or backbone is
 * gone (deleted, or collected by kennel gc).
 */
export async function trainingReference(ws: Workspace, model: string, lineage: Record<string, unknown> | undefined): Promise<TrainingReference> {
  const ds = lineage?.dataset as { name?: string; version?: number } | undefined;
  const bb = lineage?.backbone as { id?: string } | undefined;
  if (!ds?.name || ds.version === undefined || !bb?.id) throw Errors.NotFound(`Model ${model} has no training dataset and backbone in its lineage (it was not trained by Kennel).`, 'Drift is checked against the training images of Kennel-trained models.');
  const dataset = await getDatasetVersion(ws, ds.name, ds.version);
  const backbone = getBackbone(ws, bb.id);
  const r: FeatureRequest = { dataset, backbone, split: 'train', view: 0, seed: 0 };
  const items = splitItems(dataset, 'train');
  if ((await missingChunks(ws, featureKey(r), items.length)).length) {
    throw Errors.NotFound(`The training features of model ${model} (dataset ${ds.name}@${ds.version}, backbone ${bb.id}) are no longer cached.`, `Train on the same dataset and backbone again to refill the cache: kennel train --dataset ${ds.name}@${ds.version} --backbone ${bb.id}.`);
  }
  const m = await readFeatures(ws, r, items, 0);
  return { data: m.data, rows: m.rows, cols: m.cols, labels: Array.from(m.labels, (l) => dataset.classes[l]!), dataset: ds.name, datasetVersion: ds.version, backbone: bb.id };
}
