import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Errors } from '../../core/index.js';
import { getModel } from '../../registry/index.js';
import { DEVICES, classify, tuneSharp, type Device } from '../../inference/index.js';
import { filePrediction, resultWriter, type FilePrediction } from '../../transform/index.js';
import { imageInputs } from '../inputs.js';
import { emit, progressBars, runAction, withWorkspace } from '../output.js';
import { number, oneOf } from '../options.js';

/** Images per model run; decoding the next ones overlaps the run, so a few batches stay in flight. */
const MAX_BATCH = 16;
const IN_FLIGHT = MAX_BATCH * 3;

const predictionText = (r: FilePrediction): string => ('error' in r ? `${r.file}: error: ${r.error}` : `${r.file}\n${r.predictions.map((p) => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`).join('\n')}`);

export function registerPredict(program: Command): void {
  // not a jsonCommand: it streams results (stdout or --out) as they come instead of printing one result at the end
  program
    .command('predict <paths...>')
    .description('Classify images offline with a registered model (the same exported ONNX graph that endpoints serve, batched the same way). PATHS are image files or folders (searched recursively for .jpg, .png, .webp, ...). Unreadable images are listed with a reason and skipped.')
    .requiredOption('--model <ref>', 'NAME, NAME@VERSION or NAME:TAG')
    .option('--top-k <k>', 'predictions per image', number('--top-k', { int: true, min: 1, max: 1000 }), 5)
    .option('--out <file>', 'write results to FILE.jsonl (one JSON object per image) or FILE.csv as they come, instead of printing each')
    .option('--device <device>', 'cpu, webgpu, cuda or auto (docs/GPU.md)', oneOf('--device', DEVICES), 'cpu')
    .option('--json', 'print JSON: the results, or with --out a summary')
    .action((paths: string[], opts: { model: string; topK: number; out?: string; device: Device; json?: boolean }) =>
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
          try {
            await classify(ws, mv, files, {
              topK: opts.topK,
              device: opts.device,
              batchSize: MAX_BATCH,
              window: IN_FLIGHT,
              signal,
              onResult: (answer, i) => {
                const r = filePrediction(files[i]!, answer);
                if ('error' in r) failed.push(r);
                else classified++;
                if (out) out.write(r);
                else results.push(r);
                bar({ phase: 'classify', done: classified + failed.length, total: files.length, detail: failed.length ? `${failed.length} skipped` : undefined });
              },
            });
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
