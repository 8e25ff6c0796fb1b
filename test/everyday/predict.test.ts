import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it, test } from 'node:test';
import { importDataset } from '../../src/data/index.ts';
import { distinctJpeg, freshWorkspace } from '../data/fixtures.ts';
import { kennel, kennelJson } from '../foundation/cli.ts';
import { sharedDir, tmpDir, tmpHome } from '../helpers/paths.ts';

const shared = sharedDir();
const photos = path.join(shared, 'data/real-photos');
const countImages = (dir: string): number => readdirSync(dir, { recursive: true }).filter((f) => /\.(jpe?g|png)$/i.test(String(f))).length;

describe('kennel predict over folders', () => {
  const home = tmpHome();
  const dir = tmpDir();

  before(() => {
    kennelJson(home, ['data', 'import', path.join(shared, 'data/breeds-mini'), '--name', 'breeds']);
    kennelJson(home, ['backbones', 'add', path.join(shared, 'models/mobilenetv2-12-int8.onnx'), '--name', 'mnv2']);
    kennelJson(home, ['train', '--dataset', 'breeds', '--backbone', 'mnv2', '--epochs', '10']);
    cpSync(path.join(photos, 'udacity-samples'), path.join(dir, 'nested/deeper'), { recursive: true });
    cpSync(path.join(photos, 'aipnd-dogs'), path.join(dir, 'aipnd'), { recursive: true });
    writeFileSync(path.join(dir, 'nested', 'broken.jpg'), 'not an image');
    writeFileSync(path.join(dir, 'notes.txt'), 'not looked at');
  });

  it('--out FILE.jsonl --json: one line per image (recursively) with file and predictions, or error; a summary on stdout', () => {
    const out = path.join(tmpDir(), 'results.jsonl');
    const r = kennel(home, ['predict', '--model', 'breeds', dir, '--out', out, '--json']);
    assert.equal(r.code, 0, 'a bad file inside a folder is skipped, not fatal');
    const summary = JSON.parse(r.stdout) as { images: number; classified: number; failed: Array<{ file: string; error: string }> };
    const total = countImages(dir);
    assert.deepEqual([summary.images, summary.classified, summary.failed.length], [total, total - 1, 1]);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { file: string; predictions?: Array<{ label: string; score: number }>; error?: string });
    assert.equal(lines.length, total);
    assert.deepEqual(lines.map((l) => l.file), [...lines.map((l) => l.file)].sort(), 'in name order');
    assert.ok(!lines.some((l) => l.file.endsWith('notes.txt')));
    for (const l of lines) {
      if (l.file.endsWith('broken.jpg')) assert.match(l.error!, /could not be decoded/);
      else assert.equal(l.predictions!.length, 5, l.file);
    }
  });

  it('gives the same predictions as classifying the files one by one, and writes CSV', () => {
    const files = readdirSync(path.join(dir, 'nested/deeper')).map((f) => path.join(dir, 'nested/deeper', f)).sort();
    const byFile = kennelJson<Array<{ file: string; predictions: Array<{ label: string; score: number }> }>>(home, ['predict', '--model', 'breeds', ...files, '--top-k', '1']);
    const one = kennelJson<Array<{ predictions: Array<{ label: string; score: number }> }>>(home, ['predict', '--model', 'breeds', files[0]!, '--top-k', '1']);
    assert.deepEqual(one[0]!.predictions, byFile[0]!.predictions, 'batching does not change an answer');
    const csv = path.join(tmpDir(), 'r.csv');
    kennelJson(home, ['predict', '--model', 'breeds', path.join(dir, 'nested'), '--out', csv]);
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    assert.equal(rows[0], 'file,label,score,top_k,error');
    assert.equal(rows.length, 1 + files.length + 1);
    const first = rows.find((r) => r.startsWith(files[0]!))!.split(',');
    assert.equal(first[1], byFile[0]!.predictions[0]!.label);
    assert.match(rows.find((r) => r.includes('broken.jpg'))!, /,,,,?The image could not be decoded/);
  });

  it('models show prints lineage one entry per line, not raw JSON', () => {
    const shown = kennel(home, ['models', 'show', 'breeds']).stdout;
    assert.match(shown, /\n  lineage:\n    job: train-\S+\n    dataset: name=breeds version=1 manifestSha=[0-9a-f]{12}\n/);
    assert.doesNotMatch(shown, /\{"/);
  });

  it('a file named on the command line that fails is an error; --out must be .jsonl or .csv', () => {
    const missing = kennel(home, ['predict', '--model', 'breeds', path.join(dir, 'nope.jpg')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /nope\.jpg does not exist/);
    const bad = kennel(home, ['predict', '--model', 'breeds', dir, '--out', 'x.txt']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /must end in \.jsonl or \.csv/);
  });
});

test('a class of four images still gets one valid and one test image', async () => {
  const ws = freshWorkspace();
  const dir = tmpDir();
  for (const cls of ['a', 'b']) {
    mkdirSync(path.join(dir, cls));
    for (let i = 0; i < 4; i++) writeFileSync(path.join(dir, cls, `${i}.jpg`), await distinctJpeg(cls.charCodeAt(0) * 10 + i));
  }
  const v = await importDataset(ws, dir, { name: 'tiny' });
  assert.deepEqual(v.report.images, { train: 4, valid: 2, test: 2 });
  ws.close();
});
