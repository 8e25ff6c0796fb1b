import { Errors, KennelError } from '../core/index.js';
import { TrainOptionsSchema, type TrainOptions } from '../training/index.js';
import { parseParamFlag, type ParamSpec, type ParamValue, type Params } from './space.js';

type Kind = 'float' | 'int' | 'enum';

interface Hyperparameter {
  /** the training option it sets */
  option: 'lr' | 'batchSize' | 'epochs' | 'weightDecay' | 'labelSmoothing' | 'head' | 'hidden' | 'dropout' | 'augment';
  kind: Kind;
  aliases: string[];
}

/** What a tuning job may search, by the name used in spaces and trial params. */
export const HYPERPARAMETERS: Record<string, Hyperparameter> = {
  lr: { option: 'lr', kind: 'float', aliases: ['learning_rate'] },
  batch_size: { option: 'batchSize', kind: 'int', aliases: ['batchSize'] },
  epochs: { option: 'epochs', kind: 'int', aliases: [] },
  weight_decay: { option: 'weightDecay', kind: 'float', aliases: ['weightDecay'] },
  label_smoothing: { option: 'labelSmoothing', kind: 'float', aliases: ['labelSmoothing'] },
  head: { option: 'head', kind: 'enum', aliases: [] },
  hidden: { option: 'hidden', kind: 'int', aliases: ['hidden_size', 'hiddenSize'] },
  dropout: { option: 'dropout', kind: 'float', aliases: [] },
  augment: { option: 'augment', kind: 'int', aliases: ['augmentation', 'views'] },
};

/** The seeds' space: learning rate (continuous) and batch size (categorical). */
export const DEFAULT_SPACE = ['lr=loguniform:1e-4:1e-1', 'batch_size=choice:32,64,128,256,512'];

const NAMES = Object.keys(HYPERPARAMETERS).join(', ');

function canonicalName(name: string): string {
  if (HYPERPARAMETERS[name]) return name;
  const hit = Object.entries(HYPERPARAMETERS).find(([, h]) => h.aliases.includes(name));
  if (!hit) throw Errors.InvalidRequest(`"${name}" is not a hyperparameter Kennel can tune.`, `Tunable: ${NAMES}.`);
  return hit[0];
}

function checkValue(name: string, h: Hyperparameter, v: ParamValue): void {
  const schema = TrainOptionsSchema.shape[h.option];
  const r = schema.safeParse(v);
  if (!r.success) throw Errors.InvalidRequest(`Search parameter "${name}" allows ${JSON.stringify(v)}, which training does not accept (${r.error.issues[0]?.message ?? 'invalid'}).`, `Keep ${name} within what kennel train --help allows.`);
}

/**
 * Checks a parsed parameter against what training accepts (names, types, every bound and
 * choice) and returns it under its canonical name.
 */
export function checkHyperparameter(p: ParamSpec): ParamSpec {
  const name = canonicalName(p.name);
  const h = HYPERPARAMETERS[name]!;
  if (h.kind === 'enum' && p.type !== 'choice') throw Errors.InvalidRequest(`Search parameter "${name}" takes choice values, e.g. ${name}=choice:linear,mlp.`, 'Use the choice type for categorical parameters.');
  if (h.kind === 'int' && (p.type === 'uniform' || p.type === 'loguniform')) throw Errors.InvalidRequest(`Search parameter "${name}" is a whole number: use int:LOW:HIGH (int:LOW:HIGH:log for a log scale) or choice.`, `e.g. ${name}=int:${name === 'augment' ? '0:2' : '16:512:log'}`);
  const values = p.type === 'choice' ? p.values : [p.low, p.high];
  for (const v of values) checkValue(name, h, v);
  return { ...p, name };
}

/** The space from --param flags (or the default space when neither flags nor a file are given). */
export function hyperparameterSpace(params: ParamSpec[]): ParamSpec[] {
  return (params.length ? params : DEFAULT_SPACE.map(parseParamFlag)).map(checkHyperparameter);
}

/** Training options for a trial's params. */
export function trainOptionsFor(params: Params): Partial<TrainOptions> {
  const out: Record<string, ParamValue> = {};
  for (const [name, v] of Object.entries(params)) out[HYPERPARAMETERS[canonicalName(name)]!.option] = v;
  // trials train the minibatch head (lr and batch size are its parameters), so a tuned or registered 'linear' is that head
  return { ...out, head: out.head === 'mlp' ? 'mlp' : 'minibatch' } as Partial<TrainOptions>;
}
