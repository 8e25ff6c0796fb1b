import type { Command } from 'commander';
import { KennelError } from '../../core/index.js';
import { getModel } from '../../registry/index.js';
import { classify, tuneSharp, type Prediction } from '../../inference/index.js';
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
        const bar = progressBars(opts);
        let results: Array<{ file: string; predictions: Prediction[] } | { file: string; error: string }>;
        try {
          // bad files are reported one by one; the rest of their batch is still classified
          const answers = await classify(ws, mv, files, { topK: opts.topK, batchSize: BATCH, signal, progress: bar });
          results = answers.map((a, i) => ('error' in a ? { file: files[i]!, error: a.error instanceof KennelError ? a.error.message : `cannot read ${files[i]}` } : { file: files[i]!, predictions: a.predictions }));
        } finally {
          bar.end();
          ws.close();
        }
        emit(opts, results, () =>
          results
            .map((r) => ('error' in r ? `${r.file}: error: ${r.error}` : `${r.file}\n${r.predictions.map((p) => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`).join('\n')}`))
            .join('\n'),
        );
        if (results.some((r) => 'error' in r)) process.exitCode = 1;
      }),
    );
}
