import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { Errors, KennelError, errorMessage, type Rng } from '../core/index.js';

export type ParamValue = number | string;
/** One trial's hyperparameters, by parameter name. */
export type Params = Record<string, ParamValue>;

export interface NumericParam {
  name: string;
  type: 'uniform' | 'loguniform' | 'int';
  low: number;
  high: number;
  /** sampled and modelled in log space (loguniform, or int with ":log") */
  log: boolean;
}

export interface ChoiceParam {
  name: string;
  type: 'choice';
  values: ParamValue[];
}

export type ParamSpec = NumericParam | ChoiceParam;

/** The parameters a search varies, in a fixed order (the order strategies draw them in). */
export interface SearchSpace {
  params: ParamSpec[];
}

const invalid = (name: string, why: string) => Errors.InvalidRequest(`Search parameter "${name}" is invalid: ${why}.`, 'Write NAME=TYPE:ARGS, e.g. lr=loguniform:1e-4:1e-1, batch_size=choice:32,64,128, epochs=int:5:30, head=choice:linear,mlp.');

const num = (s: string): number => (s.trim() === '' ? NaN : Number(s));

/** A choice value: a number when it reads as one, else the string. */
const choiceValue = (s: string): ParamValue => (Number.isFinite(num(s)) ? num(s) : s.trim());

function numeric(name: string, type: NumericParam['type'], low: number, high: number, log = type === 'loguniform'): NumericParam {
  if (!Number.isFinite(low) || !Number.isFinite(high)) throw invalid(name, 'its bounds must be numbers');
  if (low > high) throw invalid(name, `the low bound ${low} is above the high bound ${high}`);
  if (log && low <= 0) throw invalid(name, 'a log scale needs a positive low bound');
  if (type === 'int' && (!Number.isInteger(low) || !Number.isInteger(high))) throw invalid(name, 'int bounds must be whole numbers');
  return { name, type, low, high, log };
}

function choice(name: string, values: ParamValue[]): ChoiceParam {
  if (!values.length || values.some((v) => v === '')) throw invalid(name, 'choice needs at least one value');
  if (new Set(values.map(String)).size !== values.length) throw invalid(name, 'choice values must differ');
  return { name, type: 'choice', values };
}

/**
 * One parameter in the command-line form TYPE:ARGS: `uniform:LOW:HIGH`, `loguniform:LOW:HIGH`,
 * `int:LOW:HIGH[:log]`, `choice:A,B,C`.
 */
export function parseParamText(name: string, text: string): ParamSpec {
  const [type, ...args] = text.split(':');
  switch (type) {
    case 'uniform':
    case 'loguniform':
      if (args.length !== 2) throw invalid(name, `${type} takes LOW:HIGH`);
      return numeric(name, type, num(args[0]!), num(args[1]!));
    case 'int':
      if (args.length !== 2 && !(args.length === 3 && args[2] === 'log')) throw invalid(name, 'int takes LOW:HIGH or LOW:HIGH:log');
      return numeric(name, 'int', num(args[0]!), num(args[1]!), args[2] === 'log');
    case 'choice':
      if (args.length !== 1) throw invalid(name, 'choice takes comma-separated values');
      return choice(name, args[0]!.split(',').map(choiceValue));
    default:
      throw invalid(name, `unknown type "${type}" (use uniform, loguniform, int or choice)`);
  }
}

/** `NAME=TYPE:ARGS`, as `--param` takes it. */
export function parseParamFlag(flag: string): ParamSpec {
  const eq = flag.indexOf('=');
  if (eq <= 0) throw invalid(flag, 'expected NAME=TYPE:ARGS');
  return parseParamText(flag.slice(0, eq).trim(), flag.slice(eq + 1).trim());
}

const SpecJson = z.union([
  z.string(),
  z.object({ type: z.enum(['uniform', 'loguniform']), low: z.number(), high: z.number() }).strict(),
  z.object({ type: z.literal('int'), low: z.number(), high: z.number(), log: z.boolean().optional() }).strict(),
  z.object({ type: z.literal('choice'), values: z.array(z.union([z.number(), z.string()])) }).strict(),
]);
const SpaceJson = z.record(z.string(), SpecJson);

/**
 * A space file: `{"lr": {"type": "loguniform", "low": 1e-4, "high": 0.1}, "batch_size":
 * "choice:32,64,128"}` (each value either the object form or the --param text form).
 */
export function parseSpaceJson(doc: unknown, source = 'The search space'): ParamSpec[] {
  const parsed = SpaceJson.safeParse(doc);
  if (!parsed.success) throw Errors.InvalidRequest(`${source} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'top level'}: ${i.message}`).join('; ')}.`, 'Write a JSON object of NAME: {"type": "loguniform", "low": 1e-4, "high": 0.1} or NAME: "choice:32,64" (see docs/TUNING.md).');
  return Object.entries(parsed.data).map(([name, s]) => {
    if (typeof s === 'string') return parseParamText(name, s);
    if (s.type === 'choice') return choice(name, s.values);
    return numeric(name, s.type, s.low, s.high, s.type === 'int' ? s.log === true : undefined);
  });
}

/** Reads a space file (JSON, see parseSpaceJson). */
export function loadSpaceFile(path: string): ParamSpec[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw Errors.InvalidRequest(`The search space file ${path} could not be read: ${errorMessage(e).split('\n')[0]}.`, 'Give a JSON file such as {"lr": "loguniform:1e-4:1e-1", "batch_size": "choice:32,64,128"}.');
  }
  return parseSpaceJson(doc, `The search space file ${path}`);
}

export function makeSpace(params: ParamSpec[]): SearchSpace {
  if (!params.length) throw Errors.InvalidRequest('The search space is empty.', 'Give --space FILE or at least one --param NAME=TYPE:ARGS.');
  const seen = new Set<string>();
  for (const p of params) {
    if (seen.has(p.name)) throw Errors.InvalidRequest(`Search parameter "${p.name}" is given twice.`, 'Give each parameter once.');
    seen.add(p.name);
  }
  return { params };
}

/** Internal coordinates for models: log for log-scaled parameters; ints widened by half a step so edge values get a full share. */
export function bounds(p: NumericParam): [number, number] {
  const lo = p.type === 'int' ? p.low - 0.5 : p.low;
  const hi = p.type === 'int' ? p.high + 0.5 : p.high;
  return p.log ? [Math.log(lo), Math.log(hi)] : [lo, hi];
}

export const toInternal = (p: NumericParam, x: number): number => (p.log ? Math.log(x) : x);

/** Back from internal coordinates, rounded and clamped for ints. */
export function fromInternal(p: NumericParam, u: number): number {
  const x = p.log ? Math.exp(u) : u;
  if (p.type === 'int') return Math.min(p.high, Math.max(p.low, Math.round(x)));
  return Math.min(p.high, Math.max(p.low, x));
}

export function sampleParam(p: ParamSpec, rng: Rng): ParamValue {
  if (p.type === 'choice') return p.values[rng.int(p.values.length)]!;
  const [lo, hi] = bounds(p);
  return fromInternal(p, rng.uniform(lo, hi));
}

/** Independent uniform draws (in log space for log parameters). */
export function sampleSpace(space: SearchSpace, rng: Rng): Params {
  const out: Params = {};
  for (const p of space.params) out[p.name] = sampleParam(p, rng);
  return out;
}

/** Whether a value lies in the parameter's domain (used to filter warm-start history). */
export function inDomain(p: ParamSpec, v: ParamValue | undefined): boolean {
  if (v === undefined) return false;
  if (p.type === 'choice') return p.values.some((x) => x === v);
  return typeof v === 'number' && v >= p.low && v <= p.high && (p.type !== 'int' || Number.isInteger(v));
}

/** Grid values of one parameter: every choice, every int up to `points`, else `points` evenly spaced (log-spaced for log parameters). */
export function gridValues(p: ParamSpec, points: number): ParamValue[] {
  if (p.type === 'choice') return p.values;
  if (p.type === 'int' && p.high - p.low + 1 <= points) return Array.from({ length: p.high - p.low + 1 }, (_, i) => p.low + i);
  if (p.low === p.high) return [p.low];
  const [a, b] = p.log ? [Math.log(p.low), Math.log(p.high)] : [p.low, p.high];
  const out = Array.from({ length: points }, (_, i) => {
    const u = a + ((b - a) * i) / (points - 1);
    const x = p.log ? Math.exp(u) : u;
    return p.type === 'int' ? Math.round(x) : Number(x.toPrecision(6));
  });
  return [...new Set(out)];
}

/** Human form of a parameter, as --param takes it. */
export function describeParam(p: ParamSpec): string {
  if (p.type === 'choice') return `${p.name}=choice:${p.values.join(',')}`;
  return `${p.name}=${p.type}:${p.low}:${p.high}${p.type === 'int' && p.log ? ':log' : ''}`;
}
