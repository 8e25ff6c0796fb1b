import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from '../../src/cli/output.js';

export const benchDir = fileURLToPath(new URL('..', import.meta.url));
/** the shared photos and models: $KENNEL_SHARED, else ../shared beside the project */
export const shared = process.env.KENNEL_SHARED ?? resolve(benchDir, '../../shared');
/** the shared MobileNetV2 int8 that the benches use as backbone or model */
export const sharedMobileNet = join(shared, 'models/mobilenetv2-12-int8.onnx');

export interface BenchArgs {
  quick: boolean;
  json: boolean;
  /** values of the bench's own options (`--name value`), by name without dashes */
  options: Record<string, string>;
}

/** A bench's own option: `--name VALUE`, with its help line and default. */
export interface BenchOption {
  help: string;
  default: string;
  /** the values it accepts, when it is a choice */
  choices?: readonly string[];
}

/**
 * The flags every bench takes: --quick (a run under 60 s) and --json (one JSON document on
 * stdout), plus the bench's own `options`.
 */
export function parseBenchArgs(argv: string[], name: string, options: Record<string, BenchOption> = {}): BenchArgs {
  const args: BenchArgs = { quick: false, json: false, options: Object.fromEntries(Object.entries(options).map(([k, o]) => [k, o.default])) };
  const fail = (message: string): never => {
    process.stderr.write(`error: ${message}\n  See npm run bench:${name} -- --help.\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const option = a.startsWith('--') ? options[a.slice(2)] : undefined;
    if (a === '--quick') args.quick = true;
    else if (a === '--json') args.json = true;
    else if (option) {
      const value = argv[++i];
      if (value === undefined || value.startsWith('--')) fail(`${a} needs a value.`);
      if (option.choices && !option.choices.includes(value!)) fail(`${a} takes ${option.choices.join(' or ')}, not "${value}".`);
      args.options[a.slice(2)] = value!;
    } else if (a === '--help' || a === '-h') {
      const own = Object.entries(options).map(([k, o]) => `  --${k} ${o.choices ? o.choices.join('|') : 'VALUE'}  ${o.help} (default: ${o.default})\n`);
      process.stdout.write(`usage: npm run bench:${name} -- [--quick] [--json]${Object.keys(options).map((k) => ` [--${k} ...]`).join('')}\n  --quick  a smaller run, under a minute\n  --json   print the results as one JSON document\n${own.join('')}`);
      process.exit(0);
    } else fail(`unknown option ${a}.`);
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
