import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from '../../src/cli/output.js';

export const benchDir = fileURLToPath(new URL('..', import.meta.url));

export interface BenchArgs {
  quick: boolean;
  json: boolean;
}

/** The flags every bench takes: --quick (a run under 60 s) and --json (one JSON document on stdout). */
export function parseBenchArgs(argv: string[], name: string): BenchArgs {
  const args = { quick: false, json: false };
  for (const a of argv) {
    if (a === '--quick') args.quick = true;
    else if (a === '--json') args.json = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: npm run bench:${name} -- [--quick] [--json]\n  --quick  a smaller run, under a minute\n  --json   print the results as one JSON document\n`);
      process.exit(0);
    } else {
      process.stderr.write(`error: unknown option ${a}\n  Use --quick and/or --json.\n`);
      process.exit(2);
    }
  }
  return args;
}

/** One row of the summary: a measured value, and its target when it has one. */
export interface SummaryRow {
  metric: string;
  value: string;
  target?: string;
  /** undefined for rows reported without a target */
  pass?: boolean;
}

export function summaryTable(rows: SummaryRow[]): string {
  return table(
    ['metric', 'value', 'target', 'result'],
    rows.map((r) => [r.metric, r.value, r.target ?? '-', r.pass === undefined ? '-' : r.pass ? 'pass' : 'FAIL']),
  );
}

/** Human log lines go to stderr, so stdout holds only the summary (or the JSON document). */
export function logger(quiet: boolean): (line: string) => void {
  return (line) => {
    if (!quiet) process.stderr.write(line + '\n');
  };
}

/** Writes bench/results/<name>-<timestamp>.json and returns its path. */
export function saveResults(name: string, results: unknown, date = new Date()): string {
  const dir = join(benchDir, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${date.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  return file;
}
