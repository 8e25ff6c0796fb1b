import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Errors } from '../../core/index.js';
import { getModel } from '../../registry/index.js';
import { DEVICES, PRECISIONS, classify, Explainer, tuneSharp, type Device, type Explanation, type Precision } from '../../inference/index.js';
import { filePrediction, resultWriter, type FilePrediction } from '../../transform/index.js';
import { imageInputs } from '../inputs.js';
import { emit, progressBars, runAction, withWorkspace } from '../output.js';
import { number, oneOf } from '../options.js';

/** Images per model run; decoding the next ones overlaps the run, so a few batches stay in flight. */
const MAX_BATCH = 16;
const IN_FLIGHT = MAX_BATCH * 3;

const predictionText = (r: FilePrediction & { explanation?: { file: string; method: string } }): string =>
  'error' in r
    ? `${r.file}: error: ${r.error}`
    : `${r.file}\n${r.predictions.map((p) => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`).join('\n')}${r.explanation ? `\n  heat map (${r.explanation.method}): ${r.explanation.file}` : ''}`;

/**
 * kennel predict --explain DIR: each image's predictions and the heat map of its best class,
 * written over the image (as the model saw it) to DIR/NAME.explain.png, one image at a time.
 */
async function explainFiles(onnxPath: string, card: Parameters<typeof Explainer.load>[1], files: string[], dir: string, topK: number, signal: AbortSignal, onResult: (r: FilePrediction & { explanation?: Omit<Explanation, 'data' | 'grid'> & { file: string } }) => void): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const explainer = await Explainer.load(onnxPath, card);
  const used = new Set<string>();
  try {
    for (const file of files) {
      if (signal.aborted) break;
      let answer;
      try {
        answer = await explainer.explain(file, topK);
      } catch (e) {
        onResult(filePrediction(file, { error: e }));
        continue;
      }
      // a.jpg in two folders: a-2.explain.png for the second
      const stem = basename(file, extname(file));
      let name = `${stem}.explain.png`;
      for (let n = 2; used.has(name); n++) name = `${stem}-${n}.explain.png`;
      used.add(name);
      const target = join(dir, name);
      writeFileSync(target, Buffer.from(answer.explanation.data, 'base64'));
      const { data: _d, grid: _g, ...about } = answer.explanation;
      onResult({ file, predictions: answer.predictions, explanation: { ...about, file: target } });
    }
  } finally {
    await explainer.close();
  }
}

export function registerPredict(program: Command): void {
  // not a jsonCommand: it streams results (stdout or --out) as they come instead of printing one result at the end
  program
    .command('predict <paths...>')
    .description('Classify images offline with a registered model (the same exported ONNX graph that endpoints serve, batched the same way). PATHS are image files or folders (searched recursively for .jpg, .png, .webp, ...). Unreadable images are listed with a reason and skipped.')
    .requiredOption('--model <ref>', 'NAME, NAME@VERSION or NAME:TAG')
    .option('--top-k <k>', 'predictions per image', number('--top-k', { int: true, min: 1, max: 1000 }), 5)
    .option('--out <file>', 'write results to FILE.jsonl (one JSON object per image) or FILE.csv as they come, instead of printing each')
    .option('--device <device>', 'cpu, webgpu, cuda or auto (docs/GPU.md)', oneOf('--device', DEVICES), 'cpu')
    .option('--precision <p>', 'arithmetic of a float model on a GPU: auto (fp16 where it measured faster and agreed with fp32, its near ties run again in fp32), fp32 or fp16 (fp16\'s answers alone)', oneOf('--precision', PRECISIONS), 'auto')
    .option('--explain <dir>', "also write a heat map of each image's best class over the image into DIR (FILE.explain.png): a class activation map, exact for Kennel's linear heads (not --head mlp or --tta flip), else occlusion sensitivity (49 extra forward passes per image); images then run one at a time")
    .option('--json', 'print JSON: the results, or with --out a summary')
    .action((paths: string[], opts: { model: string; topK: number; out?: string; device: Device; precision: Precision; explain?: string; json?: boolean }) =>
      runAction(async (signal) => {
        const { files, named } = imageInputs(paths);
        if (files.length === 0) throw Errors.InvalidRequest(`No images found in ${paths.join(', ')}.`, 'Pass image files, or folders that hold .jpg, .png or .webp files.');
        const results: FilePrediction[] = [];
        const failed: Array<{ file: string; error: string }> = [];
        let classified = 0;
        const model = await withWorkspace(async (ws) => {
          const mv = getModel(ws, opts.model);
          const out = opts.out === undefined ? undefined : resultWriter(resolve(opts.out));
          tuneSharp();
          const bar = progressBars(opts);
          const onResult = (r: FilePrediction): void => {
            if ('error' in r) failed.push(r);
            else classified++;
            if (out) out.write(r);
            else results.push(r);
            bar({ phase: opts.explain ? 'explain' : 'classify', done: classified + failed.length, total: files.length, detail: failed.length ? `${failed.length} skipped` : undefined });
          };
          try {
            if (opts.explain) await explainFiles(await ws.artifacts.localPath(mv.onnxSha), mv.card, files, resolve(opts.explain), opts.topK, signal, onResult);
            else {
              await classify(ws, mv, files, { topK: opts.topK, device: opts.device, precision: opts.precision, batchSize: MAX_BATCH, window: IN_FLIGHT, signal, onResult: (answer, i) => onResult(filePrediction(files[i]!, answer)) });
            }
          } finally {
            bar.end();
            out?.close();
          }
          return `${mv.name}@${mv.version}`;
        });
        if (opts.out) {
          const summary = { model, out: resolve(opts.out), images: files.length, classified, failed };
          emit(opts, summary, () => [`${model}: classified ${classified} of ${files.length} images into ${summary.out}`, ...failed.map((f) => `  skipped ${f.file}: ${f.error}`)].join('\n'));
        } else emit(opts, results, () => results.map(predictionText).join('\n'));
        // a file named on the command line that fails is an error; inside a folder, a skipped file is reported
        if (failed.some((f) => named.has(f.file))) process.exitCode = 1;
        if (signal.aborted) process.exitCode = 130;
      }),
    );
}
