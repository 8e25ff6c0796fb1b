import type { Command } from 'commander';
import { addBackbone, listBackbones, pullBackbone } from '../../backbones/index.js';
import { deletedText, jsonCommand, table, type CommandContext } from '../output.js';
import { number, oneOf, triple } from '../options.js';

export function registerBackbones(program: Command): void {
  const cmd = program.command('backbones').description('Pretrained feature extractors: the built-in ONNX Model Zoo catalog and your own ONNX files.');

  jsonCommand(cmd.command('list').description('List catalog backbones and the ones installed in this workspace.'), {
    action: ({ ws }) => listBackbones(ws),
    json: (rows) => ({ backbones: rows }),
    human: (rows) =>
      table(
        ['ID', 'INSTALLED', 'SIZE', 'FEATURES', 'NOTE'],
        rows.map((r) => [r.id, r.installed ? 'yes' : '-', r.bytes ? `${(r.bytes / 1e6).toFixed(1)} MB` : '-', r.featureDim ?? '-', r.note ?? '']),
      ),
  });

  jsonCommand(
    cmd
      .command('pull <id>')
      .description('Download a catalog backbone, verify its size and sha256, and install it (an interrupted download resumes).')
      .option('--from <file-or-url>', 'install from a local copy or a mirror URL instead of the catalog URL (still verified)'),
    {
      action: ({ ws, opts, signal, bar }: CommandContext<{ from?: string; json?: boolean }>, id: string) => pullBackbone(ws, id, { from: opts.from, progress: bar, signal }),
      json: (b) => ({ id: b.id, sha256: b.modelSha, featureTensor: b.spec.featureTensor, featureDim: b.spec.featureDim, preprocess: b.spec.preprocess }),
      human: (b) => `installed ${b.id}: ${b.spec.featureDim}-d features from tensor ${b.spec.featureTensor}`,
    },
  );

  const addCmd = cmd
    .command('add <file>')
    .description('Register a local ONNX image classifier as a backbone. Its pooled penultimate feature tensor is found automatically and exposed as an extra output.')
    .requiredOption('--name <name>', 'backbone id to register it under')
    .option('--feature-tensor <tensor>', 'name of the feature tensor, when automatic detection picks the wrong one')
    .option('--input-size <px>', 'square input size (default: from the model, else 224)', number('--input-size', { int: true, min: 8, max: 4096 }))
    .option('--layout <layout>', 'input layout NCHW or NHWC (default: from the model)', oneOf('--layout', ['NCHW', 'NHWC'] as const))
    .option('--normalize <preset>', 'normalisation preset: imagenet (x/255, ImageNet mean/std) or tf127 ((x-127)/128)', oneOf('--normalize', ['imagenet', 'tf127'] as const))
    .option('--mean <r,g,b>', 'per-channel mean, after scaling', triple('--mean'))
    .option('--std <r,g,b>', 'per-channel std, after scaling', triple('--std'))
;
  jsonCommand(addCmd, {
    action: ({ ws, opts }: CommandContext<{ name: string; featureTensor?: string; inputSize?: number; layout?: 'NCHW' | 'NHWC'; normalize?: 'imagenet' | 'tf127'; mean?: [number, number, number]; std?: [number, number, number]; json?: boolean }>, file: string) => addBackbone(ws, file, opts),
    json: (b) => ({ id: b.id, sha256: b.modelSha, featureTensor: b.spec.featureTensor, featureDim: b.spec.featureDim, detected: b.how, preprocess: b.spec.preprocess }),
    human: (b) =>
      [`added backbone ${b.id}`, `  features: ${b.spec.featureDim}-d, from tensor ${b.spec.featureTensor} (${b.how})`, `  input: ${b.spec.inputName} ${b.spec.preprocess.layout} ${b.spec.preprocess.size}x${b.spec.preprocess.size}`, `next: kennel train --dataset NAME --backbone ${b.id}`].join('\n'),
  });

  jsonCommand(cmd.command('delete <id>').description('Uninstall a backbone and free its ONNX graphs; models trained on it keep working (each model is one self-contained graph).'), {
    // housekeeping brings serving, training and tuning: loaded when a delete runs, not at every start
    action: async ({ ws }, id: string) => (await import('../../housekeeping/index.js')).deleteBackbone(ws, id),
    human: deletedText,
  });
}
