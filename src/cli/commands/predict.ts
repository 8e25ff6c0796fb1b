import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { KennelError } from '../../core/errors.js';
import { getModel } from '../../registry/index.js';
import { Classifier, tuneSharp, type Prediction } from '../../inference/index.js';
import { openWorkspace } from '../../store/index.js';
import { emit, progressBars, runAction } from '../output.js';
import { number } from '../options.js';

const BATCH = 16;

export function registerPredict(program: Command): void {
  program
    .command('predict <files...>')
    .description('Classify image files offline with a registered model (the same exported ONNX graph that endpoints serve).')
    .requiredOption('--model <ref>', 'NAME, NAME@VERSION or NAME:TAG')
    .option('--top-k <k>', 'predictions per image', number('--top-k', { int: true, min: 1, max: 1000 }), 5)
    .option('--json', 'print JSON')
    .action((files: string[], opts: { model: string; topK: number; json?: boolean }) =>
      runAction(async (signal) => {
        const ws = openWorkspace();
        const mv = getModel(ws, opts.model);
        tuneSharp();
        const clf = await Classifier.load(await ws.artifacts.localPath(mv.onnxSha), mv.card);
        const bar = progressBars(opts);
        const results: Array<{ file: string; predictions: Prediction[] } | { file: string; error: string }> = [];
        try {
          const input = clf.inputBuffer(BATCH);
          for (let i = 0; i < files.length && !signal.aborted; i += BATCH) {
            // bad files are reported one by one; the rest of the batch is still classified
            const ok: string[] = [];
            for (const f of files.slice(i, i + BATCH)) {
              try {
                if (!statSync(f).isFile()) throw new KennelError(`${f} is not a file.`);
                await clf.preprocess(f, input, ok.length);
                ok.push(f);
              } catch (e) {
                results.push({ file: f, error: e instanceof KennelError ? e.message : `cannot read ${f}` });
              }
            }
            if (ok.length) {
              const probs = await clf.run(input, ok.length);
              ok.forEach((f, j) => results.push({ file: f, predictions: clf.topK(probs, j, opts.topK) }));
            }
            bar({ phase: 'classify', done: Math.min(files.length, i + BATCH), total: files.length });
          }
        } finally {
          bar.end();
          await clf.close();
          ws.close();
        }
        results.sort((a, b) => files.indexOf(a.file) - files.indexOf(b.file));
        emit(opts, results, () =>
          results
            .map((r) => ('error' in r ? `${r.file}: error: ${r.error}` : `${r.file}\n${r.predictions.map((p) => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`).join('\n')}`))
            .join('\n'),
        );
        if (results.some((r) => 'error' in r)) process.exitCode = 1;
      }),
    );
}
