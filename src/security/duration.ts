import { Errors, KennelError } from '../core/index.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses "500ms", "10s", "15m", "24h", "30d", "2w" into milliseconds. */
export function parseDuration(text: string, what = 'duration', opts: { allowZero?: boolean } = {}): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (!m) throw Errors.InvalidRequest(`${what} "${text}" is not a duration.`, 'Use a number with a unit: 500ms, 10s, 15m, 24h, 30d or 2w.');
  const ms = Number(m[1]) * UNITS[m[2]!]!;
  if (ms <= 0 && !(opts.allowZero && ms === 0)) throw Errors.InvalidRequest(`${what} must be more than zero.`);
  if (!Number.isSafeInteger(Math.round(ms))) throw Errors.InvalidRequest(`${what} "${text}" is too long.`, 'Use a duration of at most a few years, e.g. 90d.');
  return Math.round(ms);
}
