import { readFileSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import type { Command } from 'commander';
import { Errors } from '../../core/index.js';
import { getDatasetVersion, parseDatasetRef } from '../../data/index.js';
import { DEVICES, type Device } from '../../inference/index.js';
import { getModel } from '../../registry/index.js';
import { checkResultsPath, DEFAULT_SHARD_SIZE, runTransform, type TransformItem, type TransformResult } from '../../transform/index.js';
import { imageInputs } from '../inputs.js';
import { jsonCommand, type CommandContext } from '../output.js';
import { number, oneOf, queueOf } from '../options.js';

interface TransformCliOptions {
  model: string;
  dataset?: string;
  out: string;
  topK: number;
  device: Device;
  instances?: number;
  queue?: string;
  shardSize: number;
  json?: boolean;
}

/** Listings of URLs: a text file with one https URL per line (blank lines and # comments skipped). */
const LISTING_EXTENSIONS = new Set(['.txt', '.urls', '.lst']);

/** The inputs of a transform and what they came from: a dataset version, folders and files, or listings of URLs. */
async function transformInputs(ctx: CommandContext<TransformCliOptions>, paths: string[]): Promise<{ items: TransformItem[]; source: string }> {
  if (ctx.opts.dataset) {
    if (paths.length) throw Errors.InvalidRequest('Give either --dataset or folders, files and URL listings, not both.', 'Run one transform per input.');
    const ref = parseDatasetRef(ctx.opts.dataset);
    const ds = await getDatasetVersion(ctx.ws, ref.name, ref.version);
    return { items: ds.items.map((it) => ({ sha: it.sha256, name: `${ds.dataset}@${ds.version}/${it.path}` })), source: `dataset ${ds.dataset}@${ds.version}` };
  }
  if (paths.length === 0) throw Errors.InvalidRequest('Nothing to transform.', 'Pass --dataset NAME[@VERSION], folders or image files, or a .txt file listing image URLs.');
  const items: TransformItem[] = [];
  const images: string[] = [];
  for (const p of paths) {
    if (LISTING_EXTENSIONS.has(extname(p).toLowerCase()) && statSync(p, { throwIfNoEntry: false })?.isFile()) {
      for (const line of readFileSync(p, 'utf8').split('\n')) {
        const url = line.trim();
        if (url && !url.startsWith('#')) items.push({ url });
      }
    } else images.push(p);
  }
  items.push(...imageInputs(images).files.map((f) => ({ path: resolve(f) })));
  if (items.length === 0) throw Errors.InvalidRequest(`No images found in ${paths.join(', ')}.`, 'Pass folders that hold .jpg, .png or .webp files, image files, or a .txt file listing image URLs.');
  return { items, source: paths.join(' ') };
}

const resultText = (r: TransformResult): string =>
  [
    `${r.model}: ${r.images - r.failed} of ${r.images} images classified into ${r.out} in ${r.seconds.toFixed(1)} s (${r.imagesPerSecond.toFixed(0)} images/s on ${r.workers} ${r.backend} worker${r.workers === 1 ? '' : 's'}${r.resumedImages ? `; ${r.resumedImages} images came from the interrupted run` : ''})`,
    `job ${r.job} (kennel jobs show ${r.job})`,
    ...r.failures.slice(0, 20).map((f) => `  skipped ${f.file}: ${f.error}`),
    r.failures.length > 20 ? `  ... and ${r.failures.length - 20} more (in ${r.out}, and with --json)` : '',
  ]
    .filter(Boolean)
    .join('\n');

export function registerTransform(program: Command): void {
  jsonCommand(
    program
      .command('transform [inputs...]')
      .description(
        'Batch transform (SageMaker CreateTransformJob): run a dataset version, folders of images or .txt listings of image URLs (fetched with the same SSRF protections as endpoints) through a model, sharded over workers, into one .jsonl or .csv. A job (kennel jobs list --kind transform): after Ctrl-C, kennel jobs cancel or a crash, the same command resumes, keeping finished shards. Images that cannot be read are listed with a reason.',
      )
      .requiredOption('--model <ref>', 'NAME, NAME@VERSION or NAME:TAG')
      .option('--dataset <ref>', 'a dataset version instead of folders: NAME or NAME@VERSION (every split)')
      .requiredOption('--out <file>', 'FILE.jsonl (one JSON object per image, in input order) or FILE.csv')
      .option('--top-k <k>', 'predictions per image', number('--top-k', { int: true, min: 1, max: 1000 }), 5)
      .option('--device <device>', 'cpu, webgpu, cuda or auto (docs/GPU.md)', oneOf('--device', DEVICES), 'cpu')
      .option('--instances <k>', 'workers: local processes, or shards in flight with --queue; default 1 (this process: one ORT session on every core)', number('--instances', { int: true, min: 1, max: 1024 }))
      .option('--queue <url>', 'Redis URL of kennel worker processes (default $KENNEL_QUEUE); inputs must be paths the workers see too, a dataset or URLs')
      .option('--shard-size <n>', 'images per shard, the unit of work and of resuming', number('--shard-size', { int: true, min: 1, max: 100_000 }), DEFAULT_SHARD_SIZE),
    {
      jsonHelp: 'print JSON: {"job", "images", "failed", "seconds", ...}',
      action: async (ctx: CommandContext<TransformCliOptions>, inputs: string[]) => {
        const { opts } = ctx;
        const out = resolve(opts.out);
        checkResultsPath(out);
        const mv = getModel(ctx.ws, opts.model);
        const { items, source } = await transformInputs(ctx, inputs);
        return runTransform(
          ctx.ws,
          { model: `${mv.name}@${mv.version}`, graph: mv, source, items, out, topK: opts.topK },
          {
            device: opts.device,
            instances: opts.instances,
            queue: queueOf(opts.queue),
            shardSize: opts.shardSize,
            signal: ctx.signal,
            progress: ctx.bar,
            onJob: (id, resumed) => {
              if (!opts.json && resumed) process.stderr.write(`resuming job ${id}\n`);
            },
          },
        );
      },
      json: (r) => ({ job: r.job, images: r.images, failed: r.failed, seconds: Number(r.seconds.toFixed(3)), imagesPerSecond: Number(r.imagesPerSecond.toFixed(1)), model: r.model, out: r.out, failures: r.failures, resumedImages: r.resumedImages, shards: r.shards, backend: r.backend, workers: r.workers }),
      human: resultText,
    },
  );
}
