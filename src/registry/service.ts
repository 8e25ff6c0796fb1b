import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PreprocessSpec } from '../inference/index.js';
import { notFound, writeFileAtomic, Errors } from '../core/index.js';
import { now, type Workspace } from '../store/index.js';

/** Everything needed to use a model version, besides the ONNX graph itself. */
export interface ModelCard {
  labels: string[];
  preprocess: PreprocessSpec;
  inputName: string;
  /** output holding class probabilities [N, classes] */
  outputName: string;
  temperature: number;
  source: 'kennel' | 'imported';
  metrics?: Record<string, unknown>;
  lineage?: Record<string, unknown>;
}

export interface ModelVersion {
  name: string;
  version: number;
  onnxSha: string;
  card: ModelCard;
  tags: string[];
  createdAt: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkModelName(name: string): void {
  if (!NAME.test(name)) throw Errors.InvalidRequest(`"${name}" is not a valid model name.`, 'Use letters, digits, dot, dash and underscore (up to 64 characters).');
}

/** Stores a model version (the ONNX bytes go to the artifact store) and returns it. */
export async function registerModel(ws: Workspace, name: string, onnx: Uint8Array, card: ModelCard): Promise<ModelVersion> {
  checkModelName(name);
  const onnxSha = await ws.artifacts.put(onnx);
  const createdAt = now();
  const version = ws.db.transaction(() => {
    ws.db.prepare('INSERT OR IGNORE INTO models (name, created_at) VALUES (?, ?)').run(name, createdAt);
    const { id } = ws.db.prepare('SELECT id FROM models WHERE name = ?').get(name) as { id: number };
    const { v } = ws.db.prepare('SELECT MAX(last_version, (SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE model_id = ?)) + 1 AS v FROM models WHERE id = ?').get(id, id) as { v: number };
    ws.db.prepare('UPDATE models SET last_version = ? WHERE id = ?').run(v, id);
    ws.db.prepare('INSERT INTO model_versions (model_id, version, onnx_sha, card, created_at) VALUES (?, ?, ?, ?, ?)').run(id, v, onnxSha, JSON.stringify(card), createdAt);
    ws.db.prepare("INSERT OR REPLACE INTO model_tags (model_id, tag, version) VALUES (?, 'latest', ?)").run(id, v);
    return v;
  })();
  return { name, version, onnxSha, card, tags: ['latest'], createdAt };
}

/** Parses NAME, NAME@VERSION or NAME:TAG. */
export function parseModelRef(ref: string): { name: string; version?: number; tag?: string } {
  const m = /^([^@:]+)(?:@(\d+)|:([A-Za-z0-9._-]+))?$/.exec(ref);
  if (!m) throw Errors.InvalidRequest(`"${ref}" is not a model reference.`, 'Write NAME, NAME@VERSION (e.g. dogs@2) or NAME:TAG (e.g. dogs:production).');
  return { name: m[1]!, version: m[2] ? Number(m[2]) : undefined, tag: m[3] };
}

interface Row {
  name: string;
  version: number;
  onnx_sha: string;
  card: string;
  created_at: string;
  model_id: number;
}

const SELECT = 'SELECT m.name, m.id AS model_id, v.version, v.onnx_sha, v.card, v.created_at FROM model_versions v JOIN models m ON m.id = v.model_id';

function tagsOf(ws: Workspace, modelId: number, version: number): string[] {
  return (ws.db.prepare('SELECT tag FROM model_tags WHERE model_id = ? AND version = ? ORDER BY tag').all(modelId, version) as Array<{ tag: string }>).map((r) => r.tag);
}

const fromRow = (ws: Workspace, r: Row): ModelVersion => ({ name: r.name, version: r.version, onnxSha: r.onnx_sha, card: JSON.parse(r.card) as ModelCard, tags: tagsOf(ws, r.model_id, r.version), createdAt: r.created_at });

/** Resolves a reference; a bare name means its latest version. */
export function getModel(ws: Workspace, ref: string): ModelVersion {
  const { name, version, tag } = parseModelRef(ref);
  let row: Row | undefined;
  if (tag) {
    row = ws.db.prepare(`${SELECT} JOIN model_tags t ON t.model_id = m.id AND t.version = v.version WHERE m.name = ? AND t.tag = ?`).get(name, tag) as Row | undefined;
  } else if (version !== undefined) {
    row = ws.db.prepare(`${SELECT} WHERE m.name = ? AND v.version = ?`).get(name, version) as Row | undefined;
  } else {
    row = ws.db.prepare(`${SELECT} WHERE m.name = ? ORDER BY v.version DESC LIMIT 1`).get(name) as Row | undefined;
  }
  if (!row) {
    const names = (ws.db.prepare('SELECT name FROM models m WHERE EXISTS (SELECT 1 FROM model_versions v WHERE v.model_id = m.id) ORDER BY name').all() as Array<{ name: string }>).map((r) => r.name);
    throw notFound(`Model ${ref}`, names.length ? `Known models: ${names.join(', ')} (see kennel models list).` : 'Train one first: kennel train --dataset NAME --backbone ID');
  }
  return fromRow(ws, row);
}

export function listModels(ws: Workspace): ModelVersion[] {
  return (ws.db.prepare(`${SELECT} ORDER BY m.name, v.version`).all() as Row[]).map((r) => fromRow(ws, r));
}

/** Points TAG at a version (e.g. production); a tag names one version at a time. */
export function tagModel(ws: Workspace, ref: string, tag: string): ModelVersion {
  if (!/^[A-Za-z][A-Za-z0-9._-]{0,31}$/.test(tag) || tag === 'latest') throw Errors.InvalidRequest(`"${tag}" is not a tag you can set.`, 'Tags start with a letter (e.g. production, staging); "latest" is managed by Kennel.');
  const mv = getModel(ws, ref);
  const { id } = ws.db.prepare('SELECT id FROM models WHERE name = ?').get(mv.name) as { id: number };
  ws.db.prepare('INSERT OR REPLACE INTO model_tags (model_id, tag, version) VALUES (?, ?, ?)').run(id, tag, mv.version);
  return getModel(ws, `${mv.name}@${mv.version}`);
}

/**
 * Writes a self-contained copy: model.onnx (image tensor in, probabilities out), labels.txt,
 * and card.json with preprocessing, metrics and lineage.
 */
export async function exportModel(ws: Workspace, ref: string, dir: string): Promise<{ dir: string; files: string[]; model: string }> {
  const mv = getModel(ws, ref);
  const out = resolve(dir);
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, 'model.onnx'), await ws.artifacts.get(mv.onnxSha));
  writeFileAtomic(join(out, 'labels.txt'), mv.card.labels.join('\n') + '\n');
  writeFileAtomic(join(out, 'card.json'), JSON.stringify({ model: `${mv.name}@${mv.version}`, onnxSha256: mv.onnxSha, ...mv.card }, null, 2) + '\n');
  return { dir: out, files: ['model.onnx', 'labels.txt', 'card.json'], model: `${mv.name}@${mv.version}` };
}

/**
 * Removes model versions (their rows and tags; the ONNX blobs are left to the garbage
 * collector). `latest` moves to the newest version left.
 */
export function deleteModelVersions(ws: Workspace, name: string, versions: number[]): void {
  const model = ws.db.prepare('SELECT id FROM models WHERE name = ?').get(name) as { id: number } | undefined;
  if (!model) return;
  ws.db.transaction(() => {
    for (const v of versions) {
      ws.db.prepare('DELETE FROM model_tags WHERE model_id = ? AND version = ?').run(model.id, v);
      ws.db.prepare('DELETE FROM model_versions WHERE model_id = ? AND version = ?').run(model.id, v);
    }
    const { newest } = ws.db.prepare('SELECT MAX(version) AS newest FROM model_versions WHERE model_id = ?').get(model.id) as { newest: number | null };
    // the model row stays, with its last version number, so numbers are never handed out twice
    if (newest !== null) ws.db.prepare("INSERT OR REPLACE INTO model_tags (model_id, tag, version) VALUES (?, 'latest', ?)").run(model.id, newest);
  })();
}
