import type { Command } from 'commander';
import { importModel, readLabels } from '../../registry/index.js';
import { jsonCommand, type CommandContext } from '../output.js';
import { number, oneOf, triple } from '../options.js';

interface ImportCliOptions {
  labels: string;
  name?: string;
  inputSize?: number;
  layout?: 'NCHW' | 'NHWC';
  normalize?: 'imagenet' | 'tf127';
  mean?: [number, number, number];
  std?: [number, number, number];
  scale?: number;
  cropFraction?: number;
  json?: boolean;
}

/** Adds `kennel models import` to the existing `models` command. */
export function registerModelsImport(program: Command): void {
  const models = program.commands.find((c) => c.name() === 'models') ?? program.command('models').description('The model registry.');
  jsonCommand(
    models
      .command('import <file>')
      .description('Register an image classifier trained elsewhere (e.g. PyTorch, exported with torch.onnx.export) so it deploys like a Kennel-trained model. Logits get a Softmax appended.')
      .requiredOption('--labels <file>', 'text file with one class label per line, in output order')
      .option('--name <name>', 'model name (default: the file name)')
      .option('--input-size <px>', 'square input size (default: from the model, else 224)', number('--input-size', { int: true, min: 8, max: 4096 }))
      .option('--layout <layout>', 'NCHW or NHWC (default: from the model)', oneOf('--layout', ['NCHW', 'NHWC'] as const))
      .option('--normalize <preset>', 'imagenet (mean/std on 0..1) or tf127 ((x-127)/128)', oneOf('--normalize', ['imagenet', 'tf127'] as const))
      .option('--mean <r,g,b>', 'per-channel mean, after --scale', triple('--mean'))
      .option('--std <r,g,b>', 'per-channel std, after --scale', triple('--std'))
      .option('--scale <s>', 'pixel scale before mean/std (imagenet: 1/255)', number('--scale', { min: 0 }))
      .option('--crop-fraction <f>', 'resize the shorter side to size/f, then centre-crop (default 0.875)', number('--crop-fraction', { min: 0.1, max: 1 })),
    {
      action: ({ ws, opts: o }: CommandContext<ImportCliOptions>, file: string) =>
        importModel(ws, file, { name: o.name, labels: readLabels(o.labels), inputSize: o.inputSize, layout: o.layout, normalize: o.normalize, mean: o.mean, std: o.std, scale: o.scale, cropFraction: o.cropFraction }),
      json: ({ model: m, output, softmaxAppended }) => ({ model: `${m.name}@${m.version}`, output, softmaxAppended, classes: m.card.labels.length, preprocess: m.card.preprocess, inputName: m.card.inputName, outputName: m.card.outputName }),
      human: ({ model: m, softmaxAppended }) =>
        [
          `registered ${m.name}@${m.version}: ${m.card.labels.length} classes, input ${m.card.inputName} ${m.card.preprocess.layout} ${m.card.preprocess.size}x${m.card.preprocess.size}`,
          softmaxAppended ? '  the model outputs logits: a Softmax node was appended, so it returns probabilities' : '  the model outputs probabilities',
          `deploy it with: kennel endpoints create NAME --model ${m.name}@${m.version}`,
        ].join('\n'),
    },
  );
}
