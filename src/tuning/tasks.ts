import { z } from 'zod';
import { KennelError } from '../core/index.js';
import { defineTask, requireArtifacts, runnableModule, type TaskType } from '../workers/index.js';
import { decodeTrialData, runTrial, type TrialData, type TrialOutcome } from './trial.js';

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const maybeNumber = z.number().nullable();

const TrainTrialInput = z.object({
  /** the trial-data artifact (standardised features of the trial's augmentation) */
  data: sha,
  spec: z.object({
    head: z.object({
      kind: z.enum(['linear', 'mlp']),
      hidden: z.number().int().positive(),
      dropout: z.number().min(0).max(0.95),
      optimizer: z.enum(['adamw', 'sgd']),
      lr: z.number().positive(),
      batchSize: z.number().int().positive(),
      epochs: z.number().int().positive(),
      weightDecay: z.number().min(0),
      labelSmoothing: z.number().min(0).max(0.99),
      patience: z.number().int().positive(),
      seed: z.number().int().min(0),
    }),
    classes: z.number().int().min(2),
    objective: z.enum(['valid.top1', 'valid.loss']),
    direction: z.enum(['max', 'min']),
    stopping: z.discriminatedUnion('rule', [
      z.object({ rule: z.literal('none') }),
      z.object({ rule: z.literal('asha'), eta: z.number().min(2), rungs: z.array(z.object({ epoch: z.number().int().positive(), values: z.array(maybeNumber) })) }),
      z.object({ rule: z.literal('median'), graceEpochs: z.number().int().min(0), medians: z.array(z.object({ epoch: z.number().int().positive(), median: z.number() })) }),
    ]),
  }),
});
export type TrainTrialInput = z.infer<typeof TrainTrialInput>;

/**
 * One tuning trial: a head trained on cached features. It reads only the artifact store, so it
 * runs inline, in a local worker process or on a `kennel worker` through Redis; a worker keeps
 * the decoded features between trials of the same augmentation.
 */
export const trainTrialTask: TaskType<TrainTrialInput, TrialOutcome> = defineTask({
  type: 'train-trial',
  input: TrainTrialInput,
  async run(ctx, input) {
    await requireArtifacts(ctx, [input.data]);
    const data = await ctx.resources.get<TrialData>(`trial-data ${input.data}`, async () => decodeTrialData(await ctx.artifacts.get(input.data)), async () => {});
    return runTrial(data, input.spec, { threads: ctx.threads, signal: ctx.signal, onEpoch: () => ctx.progress(1) });
  },
});

/** The task types of this area; workers load this module by URL. */
export const tasks: TaskType[] = [trainTrialTask];

/** URL of this module, for engines that start workers (the .ts source under tsx, else the built .js). */
export const TUNING_TASKS = (): string => runnableModule(new URL('./tasks.js', import.meta.url));
