import { CancelledError, KennelError, errorMessage, fromSystemError, printable, type ProgressEvent, type ProgressSink } from '../core/index.js';
import { defaultHome, openWorkspace, type Workspace } from '../store/index.js';
import type { Command } from 'commander';
import type { Deleted } from '../housekeeping/index.js';

export interface OutputOptions {
  json?: boolean;
}

/** Prints one JSON document for --json, or human text otherwise. */
export function emit(opts: OutputOptions, json: unknown, human: () => string): void {
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  else {
    const text = human();
    if (text) process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  }
}

/**
 * Progress bars on stderr. On a TTY a bar redraws in place; elsewhere (CI logs, pipes) each phase
 * prints a start line and a done line so logs stay short. Nothing is printed with --json.
 */
export type ProgressBars = ProgressSink & { end(): void };

export function progressBars(opts: OutputOptions): ProgressBars {
  const tty = process.stderr.isTTY && !opts.json;
  let current: string | undefined;
  let lastDraw = 0;
  const started = new Map<string, number>();
  const finish = () => {
    if (tty && current) process.stderr.write('\n');
    current = undefined;
  };
  const sink = (e: ProgressEvent) => {
    if (opts.json) return;
    if (!started.has(e.phase)) started.set(e.phase, Date.now());
    if (current !== e.phase) {
      finish();
      current = e.phase;
      if (!tty) process.stderr.write(`${e.phase}: ${e.total} to do\n`);
    }
    const complete = e.done >= e.total;
    const t = Date.now();
    if (tty && (complete || t - lastDraw > 80)) {
      lastDraw = t;
      process.stderr.write('\r' + renderBar(e, (t - started.get(e.phase)!) / 1000) + '\x1b[K');
    }
    if (complete) {
      if (!tty) process.stderr.write(`${e.phase}: done in ${((t - started.get(e.phase)!) / 1000).toFixed(1)}s${e.detail ? ` (${e.detail})` : ''}\n`);
      finish();
    }
  };
  return Object.assign(sink, { end: finish });
}

export function renderBar(e: ProgressEvent, seconds: number, width = 28): string {
  const frac = e.total > 0 ? Math.min(1, e.done / e.total) : 1;
  const filled = Math.round(frac * width);
  const rate = seconds > 0 ? e.done / seconds : 0;
  const eta = rate > 0 && e.done < e.total ? ` eta ${Math.ceil((e.total - e.done) / rate)}s` : '';
  return `${e.phase.padEnd(18)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${e.done}/${e.total}${eta}${e.detail ? '  ' + e.detail : ''}`;
}

/**
 * Runs a command action: Ctrl-C aborts the signal (work finished so far is kept), a second
 * Ctrl-C exits at once. Errors print as one sentence plus what to do; never a stack trace
 * unless KENNEL_DEBUG is set.
 */
export async function runAction(action: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping: finishing the current step and keeping completed work (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    await action(controller.signal);
  } catch (e) {
    process.exitCode = reportError(e);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export function reportError(error: unknown): number {
  if (process.env.KENNEL_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  // a full disk or a permission problem, also inside a wrapping error: what to free or fix
  const e = fromSystemError(error, { home: defaultHome() }) ?? error;
  if (e instanceof CancelledError) {
    process.stderr.write('cancelled: completed work is saved; run the same command again to resume.\n');
    return 130;
  }
  if (e instanceof KennelError) {
    // names in messages (a class folder, a file) may hold control or bidi characters
    process.stderr.write(`error: ${printable(e.message)}${e.hint ? `\n  ${printable(e.hint)}` : ''}\n`);
    return 1;
  }
  const msg = printable(errorMessage(e).split('\n')[0]!);
  process.stderr.write(`error: ${msg}\n  This is unexpected; rerun with KENNEL_DEBUG=1 for details and report it.\n`);
  return 2;
}

/** Formats rows as an aligned text table. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(x * 100).toFixed(1)}%`);

/** Opens the workspace of KENNEL_HOME for one piece of work and always closes it. */
export async function withWorkspace<T>(work: (ws: Workspace) => T | Promise<T>): Promise<T> {
  const ws = openWorkspace();
  try {
    return await work(ws);
  } finally {
    ws.close();
  }
}

/** What a jsonCommand action gets. */
export interface CommandContext<O> {
  opts: O;
  /** The workspace of KENNEL_HOME: opened on first use, closed when the action ends. */
  readonly ws: Workspace;
  /** Aborted by Ctrl-C (work finished so far is kept). */
  signal: AbortSignal;
  /** Progress bars on stderr (silent with --json): made on first use, ended before the output. */
  readonly bar: ProgressBars;
}

export interface JsonCommandSpec<A extends unknown[], O, R> {
  /** The work; its result is printed. Positional arguments follow the context. */
  action(ctx: CommandContext<O>, ...args: A): R | Promise<R>;
  /** The --json document (default: the result itself). */
  json?(result: R, opts: O): unknown;
  /** The human text (an empty string prints nothing). */
  human(result: R, opts: O): string;
  /** The help text of --json (default: print JSON). */
  jsonHelp?: string;
}

/**
 * The skeleton of a command that prints one result: adds `--json` (after the command's own
 * options), runs the action under runAction with a lazily opened workspace, ends the progress
 * bars, closes the workspace, then emits the JSON document or the human text.
 */
export function jsonCommand<A extends unknown[], O extends OutputOptions, R>(cmd: Command, spec: JsonCommandSpec<A, O, R>): Command {
  return cmd.option('--json', spec.jsonHelp ?? 'print JSON').action((...argv: unknown[]) => {
    // commander passes the positional arguments, then the options, then the command
    const args = argv.slice(0, -2) as A;
    const opts = argv[argv.length - 2] as O;
    return runAction(async (signal) => {
      let ws: Workspace | undefined;
      let bar: ProgressBars | undefined;
      const ctx: CommandContext<O> = {
        opts,
        signal,
        get ws() {
          return (ws ??= openWorkspace());
        },
        get bar() {
          return (bar ??= progressBars(opts));
        },
      };
      let result: R;
      try {
        result = await spec.action(ctx, ...args);
        bar?.end();
      } finally {
        ws?.close();
      }
      emit(opts, spec.json ? spec.json(result, opts) : result, () => spec.human(result, opts));
    });
  });
}

/** A size in B, kB, MB or GB. */
export const bytesText = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);

/** Human output of a delete: what went and what the collector freed. */
export const deletedText = (r: Deleted): string => `deleted ${r.deleted.join(', ')}; freed ${bytesText(r.gc.bytes)} (${r.gc.items.length} file${r.gc.items.length === 1 ? '' : 's'})`;
