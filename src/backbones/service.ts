import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { downloadFile, notFound, type ProgressSink, Errors } from '../core/index.js';
import { OnnxModel } from '../onnx/index.js';
import { now, type Workspace } from '../store/index.js';
import { FEATURES_OUTPUT, buildExtractor, findFeatureTensor, inferInputLayout } from './graph.js';
import { NORMALIZATIONS, type PreprocessSpec } from '../inference/index.js';

export interface CatalogEntry {
  id: string;
  url: string;
  bytes: number;
  sha256: string;
  inputSize: number;
  normalize: keyof typeof NORMALIZATIONS;
  note: string;
}

export interface BackboneSpec {
  inputName: string;
  featureTensor: string;
  featureDim: number;
  outputName: typeof FEATURES_OUTPUT;
  preprocess: PreprocessSpec;
}

export interface Backbone {
  id: string;
  source: 'catalog' | 'local';
  modelSha: string;
  extractorSha: string;
  spec: BackboneSpec;
  createdAt: string;
}

const catalogFile = fileURLToPath(new URL('../../catalog/backbones.json', import.meta.url));

/**
 * The built-in catalog. KENNEL_MODEL_MIRROR replaces the download base URL (a mirror, or a local
 * http server in tests) without editing the catalog.
 */
export function catalog(): CatalogEntry[] {
  const raw = JSON.parse(readFileSync(catalogFile, 'utf8')) as { baseUrl: string; backbones: Array<Omit<CatalogEntry, 'url'> & { path: string }> };
  const base = process.env.KENNEL_MODEL_MIRROR || raw.baseUrl;
  return raw.backbones.map(({ path, ...e }) => ({ ...e, url: new URL(path, base.endsWith('/') ? base : base + '/').href }));
}

/** What a user may say about a model file's input where Kennel cannot read it from the graph. */
export interface InputOverrides {
  inputSize?: number;
  layout?: 'NCHW' | 'NHWC';
  normalize?: keyof typeof NORMALIZATIONS;
  mean?: [number, number, number];
  std?: [number, number, number];
  scale?: number;
}

export interface AddOptions extends InputOverrides {
  name: string;
  featureTensor?: string;
}

/** Registers a local ONNX classifier as a backbone: finds its feature tensor and builds an extractor. */
export async function addBackbone(ws: Workspace, file: string, opts: AddOptions, source: Backbone['source'] = 'local'): Promise<Backbone & { how: string }> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(opts.name)) throw Errors.InvalidRequest(`"${opts.name}" is not a valid backbone name.`, 'Use letters, digits, dot, dash and underscore (up to 64 characters).');
  const { bytes, model } = OnnxModel.readFile(file, 'add the .onnx file');
  const detected = inferInputLayout(model);
  const norm = NORMALIZATIONS[opts.normalize ?? (detected.layout === 'NHWC' ? 'tf127' : 'imagenet')];
  const preprocess: PreprocessSpec = {
    size: opts.inputSize ?? detected.size ?? 224,
    cropFraction: 0.875,
    layout: opts.layout ?? detected.layout,
    scale: opts.scale ?? norm.scale,
    mean: opts.mean ?? [...norm.mean],
    std: opts.std ?? [...norm.std],
  };
  const found = opts.featureTensor ? { tensor: opts.featureTensor, how: 'named with --feature-tensor' } : findFeatureTensor(model);
  const inputName = model.dataInputs[0]?.name;
  if (!inputName) throw Errors.InvalidRequest(`${file} has no image input.`);
  const { model: extractor, dim } = await buildExtractor(model, found.tensor, preprocess);
  const modelSha = await ws.artifacts.put(bytes);
  const extractorSha = await ws.artifacts.put(extractor.serialize());
  const backbone: Backbone = {
    id: opts.name,
    source,
    modelSha,
    extractorSha,
    spec: { inputName, featureTensor: found.tensor, featureDim: dim, outputName: FEATURES_OUTPUT, preprocess },
    createdAt: now(),
  };
  ws.db
    .prepare('INSERT OR REPLACE INTO backbones (id, source, model_sha, extractor_sha, spec, created_at) VALUES (?, ?, ?, ?, ?, ?)')
    .run(backbone.id, source, modelSha, extractorSha, JSON.stringify(backbone.spec), backbone.createdAt);
  return { ...backbone, how: found.how };
}

/**
 * Downloads a catalog backbone (resuming an interrupted download), checks size and sha256, and
 * registers it. `from` takes a local file or another URL for machines without internet.
 */
export async function pullBackbone(ws: Workspace, id: string, opts: { from?: string; progress?: ProgressSink; signal?: AbortSignal } = {}): Promise<Backbone> {
  const entry = catalog().find((e) => e.id === id);
  if (!entry) throw notFound(`Backbone "${id}" in the catalog`, `Known ids: ${catalog().map((e) => e.id).join(', ')}.`);
  const existing = findBackbone(ws, id);
  if (existing && existing.modelSha === entry.sha256) return existing;
  const dest = join(ws.home, 'downloads', `${entry.id}.onnx`);
  const got = await downloadFile(opts.from ?? entry.url, dest, { expectedSize: entry.bytes, sha256: entry.sha256, progress: opts.progress, signal: opts.signal, label: `download ${id}` }).catch((e: unknown) => {
    // offline: say how to install a copy fetched elsewhere
    if (!opts.from && Errors.DownloadFailed.is(e)) throw e.withHint(`Run the same command again to resume, or install a copy downloaded elsewhere: kennel backbones pull ${id} --from FILE (${entry.url}).`);
    throw e;
  });
  const norm = NORMALIZATIONS[entry.normalize];
  return addBackbone(ws, got.path, { name: id, inputSize: entry.inputSize, scale: norm.scale, mean: [...norm.mean], std: [...norm.std] }, 'catalog');
}

export function findBackbone(ws: Workspace, id: string): Backbone | undefined {
  const row = ws.db.prepare('SELECT * FROM backbones WHERE id = ?').get(id) as BackboneRow | undefined;
  return row && fromRow(row);
}

export function getBackbone(ws: Workspace, id: string): Backbone {
  const b = findBackbone(ws, id);
  if (b) return b;
  const inCatalog = catalog().some((e) => e.id === id);
  throw notFound(`Backbone "${id}"`, inCatalog ? `Download it first: kennel backbones pull ${id}` : 'Register a local ONNX file with: kennel backbones add FILE.onnx --name NAME');
}

/** Removes a backbone's row (the collector frees its ONNX graphs). */
export function deleteBackbone(ws: Workspace, id: string): void {
  ws.db.prepare('DELETE FROM backbones WHERE id = ?').run(id);
}

export interface BackboneListing {
  id: string;
  installed: boolean;
  source: string;
  bytes?: number;
  featureDim?: number;
  note?: string;
}

export function listBackbones(ws: Workspace): BackboneListing[] {
  const installed = (ws.db.prepare('SELECT * FROM backbones ORDER BY created_at').all() as BackboneRow[]).map(fromRow);
  const byId = new Map(installed.map((b) => [b.id, b]));
  const rows: BackboneListing[] = catalog().map((e) => ({ id: e.id, installed: byId.has(e.id), source: 'catalog', bytes: e.bytes, featureDim: byId.get(e.id)?.spec.featureDim, note: e.note }));
  for (const b of installed) if (!rows.some((r) => r.id === b.id)) rows.push({ id: b.id, installed: true, source: b.source, bytes: undefined, featureDim: b.spec.featureDim, note: `local: feature ${b.spec.featureTensor}` });
  return rows;
}

interface BackboneRow {
  id: string;
  source: Backbone['source'];
  model_sha: string;
  extractor_sha: string;
  spec: string;
  created_at: string;
}

const fromRow = (r: BackboneRow): Backbone => ({ id: r.id, source: r.source, modelSha: r.model_sha, extractorSha: r.extractor_sha, spec: JSON.parse(r.spec) as BackboneSpec, createdAt: r.created_at });
