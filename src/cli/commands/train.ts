import { Option, type Command } from 'commander';
import { availableParallelism } from 'node:os';
import { parseDatasetRef } from '../../data/index.js';
import { DEVICES, PRECISIONS } from '../../inference/index.js';
import { train, type TrainOptions, type TrainResult } from '../../training/index.js';
import { jsonCommand, pct, type CommandContext } from '../output.js';
import { firedRuleLines } from './insights.js';
import { number, oneOf, queueOf } from '../options.js';

/** The (up to) three classes with the lowest test accuracy below 100%, e.g. "Beagle 50.0%, Boxer 66.7%". */
function weakest(perClass: number[], labels: string[]): string {
  const below = perClass
    .map((acc, i) => ({ acc, label: labels[i] ?? String(i) }))
    .filter((c) => c.acc < 1)
    .sort((a, b) => a.acc - b.acc)
    .slice(0, 3);
  return below.length ? below.map((c) => `${c.label} ${pct(c.acc)}`).join(', ') : 'none (every class 100%)';
}

/** e.g. "logistic regression, L2 0.01 (chosen by cv-5: held-out top-1 91.0%, prototype 88.0%)". */
function describeHead(h: TrainResult['head']): string {
  if (!('scores' in h)) return `${h.kind === 'mlp' ? 'MLP' : 'softmax regression'} trained by minibatches (forced)`;
  const what = h.kind === 'prototype' ? 'cosine nearest-centroid prototypes' : `logistic regression, L2 ${h.l2}${h.prior === 'prototype' ? ' toward the class prototypes' : ''}`;
  if (h.selectedBy === 'forced') return `${what} (forced)`;
  const chosen = h.scores.find((s) => s.kind === h.kind && s.l2 === h.l2);
  const proto = h.scores[0]!;
  const bestLogistic = h.scores.filter((s) => s.kind === 'logistic').sort((a, b) => b.top1 - a.top1)[0];
  const other = h.kind === 'prototype' ? (bestLogistic ? `, best logistic ${pct(bestLogistic.top1)}` : '') : `, prototype ${pct(proto.top1)}`;
  return `${what} (chosen by ${h.selectedBy}: held-out top-1 ${pct(chosen?.top1 ?? 0)}${other})`;
}

export function registerTrain(program: Command): void {
  const trainCmd = program
    .command('train')
    .description('Train a classifier: a frozen pretrained backbone (features cached per dataset version) plus a new head, evaluated, calibrated and registered as a model version.')
    .requiredOption('--dataset <name[@version]>', 'dataset to train on (latest version unless @N)')
    .requiredOption('--backbone <id>', 'installed backbone (kennel backbones list)')
    .option('--name <model>', 'model name to register (default: the dataset name)')
    .option('--head <kind>', 'auto (default: logistic regression fitted to convergence or the cosine nearest-centroid prototype head, and the L2 penalty, chosen by cross-validation or the valid split), linear (logistic regression, penalty chosen the same way), prototype (nearest centroid), mlp (one hidden layer, minibatch), minibatch (softmax regression by minibatch AdamW/SGD, what kennel tune tunes)', oneOf('--head', ['auto', 'linear', 'mlp', 'prototype', 'minibatch'] as const), 'auto')
    .option('--l2 <lambda>', 'fixed L2 penalty of the logistic regression (auto/linear), instead of the search', number('--l2', { min: 1e-12, max: 100 }))
    .option('--tta <mode>', 'test-time augmentation in the exported graph: none, or flip (mean of the image and its mirror; 2-3x the serving cost)', oneOf('--tta', ['none', 'flip'] as const), 'none')
    .option('--lr <rate>', 'learning rate (mlp/minibatch heads)', number('--lr', { min: 1e-8, max: 10 }), 1e-3)
    .option('--batch-size <n>', 'minibatch size (mlp/minibatch heads)', number('--batch-size', { int: true, min: 1, max: 65536 }), 64)
    .option('--epochs <n>', 'maximum epochs (early stopping on valid loss may stop sooner) (mlp/minibatch heads)', number('--epochs', { int: true, min: 1, max: 10000 }), 30)
    .option('--weight-decay <w>', 'decoupled weight decay (mlp/minibatch heads)', number('--weight-decay', { min: 0, max: 1 }), 1e-4)
    .option('--label-smoothing <e>', 'label smoothing (mlp/minibatch heads)', number('--label-smoothing', { min: 0, max: 0.99 }), 0.1)
    .option('--hidden <n>', 'hidden units of the mlp head', number('--hidden', { int: true, min: 1, max: 16384 }), 512)
    .option('--dropout <p>', 'dropout of the mlp hidden layer', number('--dropout', { min: 0, max: 0.95 }), 0.2)
    .option('--optimizer <name>', 'adamw or sgd (momentum 0.9) (mlp/minibatch heads)', oneOf('--optimizer', ['adamw', 'sgd'] as const), 'adamw')
    .option('--patience <epochs>', 'early-stopping patience (mlp/minibatch heads)', number('--patience', { int: true, min: 1 }), 5)
    .option('--augment <views>', 'extra random-resized-crop + flip views per training image (each cached)', number('--augment', { int: true, min: 0, max: 32 }), 0)
    .option('--device <device>', 'cpu, webgpu (GPU through ONNX Runtime WebGPU), cuda (ONNX Runtime CUDA provider, installed separately: docs/GPU.md) or auto (cuda, then webgpu, then cpu)', oneOf('--device', DEVICES), 'cpu')
    .option('--precision <p>', 'arithmetic of a float backbone on a GPU: auto (fp16 where it measured faster and agreed with fp32, once per machine; fp32 on the CPU), fp32 or fp16', oneOf('--precision', PRECISIONS), 'auto')
    .option('--seed <n>', 'random seed (shuffles, init, augmentation)', number('--seed', { int: true, min: 0 }), 0)
    .option('--instances [k]', 'shard feature extraction over K workers (alias --workers): local processes, or tasks in flight with --queue; default and no value: one per core (at most one per chunk to extract; one on a GPU); 1 = this process', number('--instances', { int: true, min: 1, max: 1024 }))
    .addOption(new Option('--workers [k]').argParser(number('--workers', { int: true, min: 1, max: 1024 })).hideHelp())
    .option('--queue <url>', 'Redis URL of kennel worker processes (default $KENNEL_QUEUE)')
    .option('--new-version', 'train and register a new version even when an identical training (same data version, backbone, options and seed) registered one already');

  jsonCommand(trainCmd, {
    action: async ({ ws, opts, bar, signal }: CommandContext<Omit<TrainOptions, 'dataset' | 'instances'> & { dataset: string; instances?: number | true; workers?: number | true; json?: boolean }>) => {
      const { name: dataset, version } = parseDatasetRef(opts.dataset);
      const { json: _json, workers, instances: k, queue, ...rest } = opts;
      const instances = (workers ?? k) === true ? availableParallelism() : ((workers ?? k) as number | undefined);
      return train(ws, { ...rest, dataset, datasetVersion: version, instances, queue: queueOf(queue) }, { progress: bar, signal });
    },
    json: (r) => {
      const brief = (m: { n: number; top1: number; top5: number; loss: number; ece: number; eceUncalibrated: number }) => ({ n: m.n, top1: m.top1, top5: m.top5, loss: m.loss, ece: m.ece, eceUncalibrated: m.eceUncalibrated });
      return {
        job: r.job,
        model: r.model,
        metrics: { train: r.metrics.train, valid: brief(r.metrics.valid), test: { ...brief(r.metrics.test), perClass: r.metrics.test.perClass } },
        head: r.head,
        temperature: r.temperature,
        bestEpoch: r.bestEpoch,
        epochs: r.history.length,
        seconds: r.seconds,
        timings: r.timings,
        features: r.features,
        reused: r.reused ?? false,
      };
    },
    human: (r) =>
      r.reused
        ? `reused model ${r.model} (identical training, job ${r.job}); pass --new-version to train again`
        : [
        `registered ${r.model} (job ${r.job})`,
        `  valid top-1 ${pct(r.metrics.valid.top1)}   test top-1 ${pct(r.metrics.test.top1)}   test top-5 ${pct(r.metrics.test.top5)}`,
        `  head: ${describeHead(r.head)}`,
        `  calibration: ECE ${r.metrics.test.eceUncalibrated.toFixed(3)} -> ${r.metrics.test.ece.toFixed(3)} with temperature ${r.temperature.toFixed(2)}`,
        `  weakest test classes: ${weakest(r.metrics.test.perClass, r.labels)}`,
        `  ${'iterations' in r.head ? `${r.head.iterations} L-BFGS iterations` : `best epoch ${r.bestEpoch} of ${r.history.length}`}; ${r.seconds.toFixed(1)}s (features ${r.timings.features.toFixed(1)}s${r.features.extractedImages === 0 ? ', all cached' : `, ${r.features.extractedImages} images extracted`}, head ${r.timings.head.toFixed(1)}s)`,
        ...firedRuleLines(r.job, r),
        `next: kennel predict --model ${r.model} IMAGE...`,
      ].join('\n'),
  });
}
