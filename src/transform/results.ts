import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { extname } from 'node:path';
import { Errors, KennelError } from '../core/index.js';
import type { Classification, Prediction } from '../inference/index.js';

/** One image's answer as `kennel predict` and `kennel transform` write it: its top-k, or why it has none. */
export type FilePrediction = { file: string; predictions: Prediction[] } | { file: string; error: string };

/** An image's answer from classify(), its error as one sentence. */
export function filePrediction(file: string, answer: Classification): FilePrediction {
  if ('predictions' in answer) return { file, predictions: answer.predictions };
  const e = answer.error;
  if (e instanceof KennelError) return { file, error: e.message };
  const code = (e as NodeJS.ErrnoException).code;
  return { file, error: code === 'ENOENT' ? `${file} does not exist.` : `${file} could not be read (${code ?? 'unknown error'}).` };
}

const csvCell = (s: string): string => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** The output formats, by the file's extension; anything else is a 400 naming the choices. */
export function checkResultsPath(path: string): '.jsonl' | '.csv' {
  const format = extname(path).toLowerCase();
  if (format !== '.jsonl' && format !== '.csv') throw Errors.InvalidRequest(`--out ${path} must end in .jsonl or .csv.`, 'Example: --out results.jsonl');
  return format;
}

export interface ResultWriter {
  write(r: FilePrediction): void;
  /** closes the file (with `atomic`: fsyncs it and renames it into place) */
  close(): void;
}

/**
 * Writes results as they come: one JSON line per image, or one CSV row (top-1, and the top-k as
 * label:score|...). With `atomic` it writes PATH.partial and renames it to PATH on close, so an
 * interrupted run never leaves a complete-looking file.
 */
export function resultWriter(path: string, opts: { atomic?: boolean } = {}): ResultWriter {
  const format = checkResultsPath(path);
  const target = opts.atomic ? `${path}.partial` : path;
  const fd = openSync(target, 'w');
  let buffered = '';
  const line = (s: string) => {
    buffered += s + '\n';
    if (buffered.length >= 1 << 16) flush();
  };
  const flush = () => {
    if (buffered) writeSync(fd, buffered);
    buffered = '';
  };
  if (format === '.csv') line('file,label,score,top_k,error');
  return {
    write: (r) => {
      if (format === '.jsonl') line(JSON.stringify(r));
      else if ('error' in r) line([csvCell(r.file), '', '', '', csvCell(r.error)].join(','));
      else {
        const top = r.predictions[0]!;
        line([csvCell(r.file), csvCell(top.label), top.score.toFixed(6), csvCell(r.predictions.map((p) => `${p.label}:${p.score.toFixed(6)}`).join('|')), ''].join(','));
      }
      // streaming callers (kennel predict) show each answer as it comes
      if (!opts.atomic) flush();
    },
    close: () => {
      flush();
      if (opts.atomic) fsyncSync(fd);
      closeSync(fd);
      if (opts.atomic) renameSync(target, path);
    },
  };
}
