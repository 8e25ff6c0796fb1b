import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { KennelError, Errors } from '../core/index.js';
import type { BatchedClassifier } from './batched.js';
import type { Prediction } from '../inference/index.js';

/** File names a folder walk picks up as images (a file named explicitly is always tried). */
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp']);

export type FilePrediction = { file: string; predictions: Prediction[] } | { file: string; error: string };

export interface ImageInputs {
  /** files to classify, folders expanded recursively in name order */
  files: string[];
  /** the files named on the command line (the rest came from folders) */
  named: Set<string>;
}

/** Expands folders (recursively) into their image files; other paths are kept as named. */
export function imageInputs(paths: string[]): ImageInputs {
  const files: string[] = [];
  const named = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) files.push(path);
    }
  };
  for (const p of paths) {
    if (statSync(p, { throwIfNoEntry: false })?.isDirectory()) walk(p);
    else {
      files.push(p);
      named.add(p);
    }
  }
  return { files, named };
}

function reason(file: string, e: unknown): string {
  if (e instanceof KennelError) return e.message;
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? `${file} does not exist.` : `${file} could not be read (${code ?? 'unknown error'}).`;
}

/**
 * Classifies files through a batched classifier, keeping up to `window` images in flight (so
 * decoding overlaps inference), and hands each result to `onResult` in input order. A file that
 * is not a readable image gets an error instead; the others still run. Stops early on `signal`.
 */
export async function predictFiles(batched: BatchedClassifier, files: string[], opts: { topK: number; window: number; signal?: AbortSignal; onResult: (r: FilePrediction) => void }): Promise<void> {
  let next = 0;
  let emitted = 0;
  const done = new Map<number, FilePrediction>();
  const worker = async (): Promise<void> => {
    while (next < files.length && !opts.signal?.aborted) {
      const i = next++;
      const file = files[i]!;
      let r: FilePrediction;
      try {
        if (!statSync(file).isFile()) throw Errors.InvalidRequest(`${file} is not a file.`);
        r = { file, predictions: await batched.classify(file, opts.topK) };
      } catch (e) {
        r = { file, error: reason(file, e) };
      }
      done.set(i, r);
      for (let d = done.get(emitted); d; d = done.get(emitted)) {
        done.delete(emitted++);
        opts.onResult(d);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.window) }, worker));
}
