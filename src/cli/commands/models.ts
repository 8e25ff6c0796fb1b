import type { Command } from 'commander';
import { exportModel, getModel, listModels, tagModel, type ModelVersion } from '../../registry/index.js';
import { deletedText, jsonCommand, pct, table, type CommandContext } from '../output.js';

type Metrics = { valid?: { top1?: number }; test?: { top1?: number; top5?: number; ece?: number } };
const metricsOf = (m: ModelVersion) => (m.card.metrics ?? {}) as Metrics;

/** A value as one short phrase: digests cut to 12 characters, objects as key=value pairs. */
function phrase(v: unknown): string {
  if (typeof v === 'string') return /^[0-9a-f]{64}$/.test(v) ? v.slice(0, 12) : v;
  if (v && typeof v === 'object' && !Array.isArray(v)) return Object.entries(v).map(([k, x]) => `${k}=${typeof x === 'object' && x !== null ? JSON.stringify(x) : phrase(x)}`).join(' ');
  return JSON.stringify(v);
}

/** Lineage one line per entry, e.g. "    dataset: name=dogs version=2 manifestSha=3f2a...". */
const lineageLines = (lineage: Record<string, unknown>): string[] => Object.entries(lineage).map(([k, v]) => `    ${k}: ${phrase(v)}`);

export function registerModels(program: Command): void {
  const cmd = program.command('models').description('The model registry: versions, tags, model cards and export.');

  jsonCommand(cmd.command('list').description('List model versions with their tags and test accuracy.'), {
    action: ({ ws }) => listModels(ws),
    json: (models) => ({ models: models.map((m) => ({ model: `${m.name}@${m.version}`, name: m.name, version: m.version, tags: m.tags, source: m.card.source, test: metricsOf(m).test, createdAt: m.createdAt })) }),
    human: (models) =>
      models.length
        ? table(
            ['MODEL', 'TAGS', 'CLASSES', 'TEST TOP-1', 'CREATED'],
            models.map((m) => [`${m.name}@${m.version}`, m.tags.join(',') || '-', m.card.labels.length, pct(metricsOf(m).test?.top1), m.createdAt.slice(0, 19).replace('T', ' ')]),
          )
        : 'no models yet: train one with kennel train --dataset NAME --backbone ID',
  });

  jsonCommand(cmd.command('show <ref>').description('Show a model card: labels, preprocessing, metrics and lineage. REF is NAME, NAME@VERSION or NAME:TAG.'), {
    action: ({ ws }, ref: string) => getModel(ws, ref),
    json: (m) => ({ model: `${m.name}@${m.version}`, onnxSha256: m.onnxSha, tags: m.tags, createdAt: m.createdAt, ...m.card }),
    human: (m) => {
      const mt = metricsOf(m);
      return [
        `${m.name}@${m.version}  tags: ${m.tags.join(', ') || '-'}  (${m.card.source})`,
        `  classes: ${m.card.labels.length} (${m.card.labels.slice(0, 5).join(', ')}${m.card.labels.length > 5 ? ', ...' : ''})`,
        `  input: ${m.card.inputName} ${m.card.preprocess.layout} ${m.card.preprocess.size}x${m.card.preprocess.size}`,
        mt.test ? `  valid top-1 ${pct(mt.valid?.top1)}  test top-1 ${pct(mt.test.top1)}  top-5 ${pct(mt.test.top5)}  ECE ${mt.test.ece?.toFixed(3)}` : '',
        ...(m.card.lineage ? ['  lineage:', ...lineageLines(m.card.lineage)] : []),
      ]
        .filter(Boolean)
        .join('\n');
    },
  });

  jsonCommand(cmd.command('tag <ref> <tag>').description('Point a tag (e.g. production) at a model version: kennel models tag dogs@3 production'), {
    action: ({ ws }, ref: string, tag: string) => ({ m: tagModel(ws, ref, tag), tag }),
    json: ({ m, tag }) => ({ model: `${m.name}@${m.version}`, tag, tags: m.tags }),
    human: ({ m, tag }) => `${m.name}:${tag} -> ${m.name}@${m.version}`,
  });

  jsonCommand(cmd.command('export <ref> <dir>').description('Write model.onnx (one graph: image tensor in, probabilities out), labels.txt and card.json to DIR.'), {
    action: ({ ws }, ref: string, dir: string) => exportModel(ws, ref, dir),
    human: (r) => `exported ${r.model} to ${r.dir}: ${r.files.join(', ')}`,
  });

  jsonCommand(
    cmd
      .command('delete <ref>')
      .description('Delete a model version (NAME@VERSION or NAME:TAG), or every version of a model (NAME), and free its ONNX graph. A version an endpoint serves or tagged production is refused unless --force.')
      .option('--force', 'delete even a served or production-tagged version'),
    {
      // housekeeping brings serving, training and tuning: loaded when a delete runs, not at every start
      action: async ({ ws, opts }: CommandContext<{ force?: boolean; json?: boolean }>, ref: string) => (await import('../../housekeeping/index.js')).deleteModel(ws, ref, { force: opts.force }),
      human: deletedText,
    },
  );
}
