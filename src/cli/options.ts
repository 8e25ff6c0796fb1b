import { InvalidArgumentError } from 'commander';

/** A --queue option's value, else $KENNEL_QUEUE (an empty variable is none). */
export const queueOf = (opt: string | undefined): string | undefined => opt ?? (process.env.KENNEL_QUEUE || undefined);

/** Commander value parsers with one-sentence errors. */
export function number(name: string, opts: { int?: boolean; min?: number; max?: number } = {}) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || (opts.int && !Number.isInteger(n))) throw new InvalidArgumentError(`${name} must be ${opts.int ? 'a whole number' : 'a number'}, not "${value}".`);
    if (opts.min !== undefined && n < opts.min) throw new InvalidArgumentError(`${name} must be at least ${opts.min}.`);
    if (opts.max !== undefined && n > opts.max) throw new InvalidArgumentError(`${name} must be at most ${opts.max}.`);
    return n;
  };
}

export function oneOf<T extends string>(name: string, values: readonly T[]) {
  return (value: string): T => {
    if (!values.includes(value as T)) throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}.`);
    return value as T;
  };
}

export function triple(name: string) {
  return (value: string): [number, number, number] => {
    const parts = value.split(',').map(Number);
    if (parts.length !== 3 || parts.some((p) => !Number.isFinite(p))) throw new InvalidArgumentError(`${name} takes three comma-separated numbers, e.g. 0.485,0.456,0.406.`);
    return parts as [number, number, number];
  };
}

/** Commander accumulator for repeatable options (`--allow a --allow b`). */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];
