import type { Command } from 'commander';
import { printable, Errors } from '../../core/index.js';
import { getDatasetVersion, importDataset, isLeak, listDatasets, parseDatasetRef, SPLITS, validateSplit, type DatasetVersion } from '../../data/index.js';
import { deletedText, jsonCommand, table, type CommandContext } from '../output.js';

interface ImportFlags {
  name: string;
  split?: string;
  seed?: string;
  sha256?: string;
  size?: string;
  followSymlinks?: boolean;
  json?: boolean;
}

/** `kennel data ...`: import image datasets as versions, list them, show one. */
export function registerData(program: Command): void {
  const data = program.command('data').alias('datasets').description('Import image datasets, inspect and delete their versions (alias: datasets).');

  jsonCommand(
    data
      .command('import')
      .summary('Import a folder, zip file or URL of a zip as a new dataset version.')
      .description(
        'Import a dataset as a new version from a folder, a .zip file, or an http(s) URL of a zip. ' +
          'Layouts: train/, valid/ and test/ folders that hold one folder per class (kept as given), or just one folder per class (split by Kennel, stratified). ' +
          'Unreadable images, names that are not UTF-8 and links out of the folder are skipped and listed; importing unchanged content reuses the latest version; an interrupted download resumes when the same command is run again.',
      )
      .argument('<source>', 'folder, .zip file, or http(s) URL of a zip')
      .requiredOption('--name <name>', 'dataset name (letters, digits, ".", "_", "-")')
      .option('--split <fractions>', 'train,valid,test fractions for a folder-per-class layout', '0.8,0.1,0.1')
      .option('--seed <n>', 'seed of that split; the same seed gives the same split', '0')
      .option('--sha256 <hex>', 'refuse a zip or download whose sha256 differs')
      .option('--size <bytes>', 'refuse a zip or download of another size')
      .option('--follow-symlinks', 'import files that links point to outside the folder (default: skipped and listed)'),
    {
      jsonHelp: 'print the result as JSON (no progress output)',
      action: async (ctx: CommandContext<ImportFlags>, source: string) => {
        const flags = ctx.opts;
        const options = {
          name: flags.name,
          split: validateSplit(parseNumbers('--split', flags.split ?? '0.8,0.1,0.1')),
          seed: parseWhole('--seed', flags.seed ?? '0'),
          sha256: flags.sha256,
          expectedSize: flags.size === undefined ? undefined : parseWhole('--size', flags.size),
          followSymlinks: flags.followSymlinks,
        };
        const progress = ctx.bar;
        try {
          // the workspace opens once the options are valid
          return await importDataset(ctx.ws, source, { ...options, progress, signal: ctx.signal });
        } finally {
          progress.end();
        }
      },
      json: versionJson,
      human: importText,
    },
  );

  jsonCommand(data.command('list').description('List the datasets in the workspace with their latest version.'), {
    jsonHelp: 'print the list as JSON',
    action: ({ ws }) => listDatasets(ws),
    human: (rows) =>
      rows.length === 0
        ? 'No datasets yet; import one with `kennel data import <folder|zip|url> --name NAME`.'
        : table(
            ['NAME', 'LATEST', 'VERSIONS', 'CLASSES', 'TRAIN', 'VALID', 'TEST'],
            rows.map((r) => [r.name, r.latest, r.versions, r.classes, r.images.train, r.images.valid, r.images.test]),
          ),
  });

  jsonCommand(data.command('show').description('Show one dataset version: classes with per-split counts, skipped files, leakage and imbalance.').argument('<dataset>', 'NAME for the latest version, or NAME@VERSION'), {
    jsonHelp: 'print the version as JSON (without the item list)',
    action: (ctx, ref: string) => {
      const { name, version } = parseDatasetRef(ref);
      return getDatasetVersion(ctx.ws, name, version);
    },
    json: versionJson,
    human: showText,
  });

  jsonCommand(data.command('delete').description('Delete a dataset version (NAME@VERSION) or every version (NAME), and free the images no other version uses. Models trained on it keep working.').argument('<dataset>', 'NAME for every version, or NAME@VERSION'), {
    // housekeeping brings serving, training and tuning: loaded when a delete runs, not at every start
    action: async ({ ws }, ref: string) => (await import('../../housekeeping/index.js')).deleteDataset(ws, ref),
    human: deletedText,
  });
}

function parseNumbers(flag: string, text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const numbers = parts.map(Number);
  if (parts.some((p) => p === '') || numbers.some((n) => !Number.isFinite(n))) {
    throw Errors.InvalidRequest(`${flag} ${text} is not a list of numbers.`, `Write it like ${flag} 0.8,0.1,0.1.`);
  }
  return numbers;
}

function parseWhole(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw Errors.InvalidRequest(`${flag} ${text} is not a whole number.`, `Write it like ${flag} 42.`);
  return n;
}

/** The --json shape of import and show; "classes" is the number of classes (a stable contract). */
function versionJson(v: DatasetVersion) {
  return {
    dataset: v.dataset,
    version: v.version,
    classes: v.classes.length,
    images: v.report.images,
    skipped: v.report.skipped,
    classNames: v.classes,
    reused: v.report.reused,
    copiedFiles: v.report.copiedFiles,
    layout: v.report.layout,
    duplicates: v.report.duplicates,
    leakage: v.report.duplicates.filter(isLeak).length,
    imbalance: v.report.imbalance,
    manifestSha: v.manifestSha,
    source: v.source,
    createdAt: v.createdAt,
  };
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

function countsLine(v: DatasetVersion): string {
  const { images } = v.report;
  return `images: ${SPLITS.map((s) => `${images[s]} ${s}`).join(', ')}`;
}

function importText(v: DatasetVersion): string {
  const r = v.report;
  const lines = r.reused
    ? [`${v.dataset}@${v.version} is unchanged (same images and labels), so no new version was made.`]
    : [`imported ${v.dataset}@${v.version} from ${printable(v.source)}`];
  lines.push(
    r.layout === 'splits' ? 'layout: train/valid/test folders, kept as given' : 'layout: one folder per class, split by Kennel',
    `classes: ${v.classes.length} (${preview(v.classes, 6)})`,
    countsLine(v),
    `copied ${plural(r.copiedFiles, 'new file')} into the workspace`,
  );
  return [...lines, ...issueLines(v)].join('\n');
}

function showText(v: DatasetVersion): string {
  const { classCounts } = v.report;
  const header = [`${v.dataset}@${v.version}  created ${v.createdAt}`, `source: ${printable(v.source)}`, `manifest: ${v.manifestSha}`, countsLine(v), ''];
  const classes = table(
    ['LABEL', 'CLASS', 'TRAIN', 'VALID', 'TEST'],
    v.classes.map((c, i) => [i, printable(c), classCounts.train[i] ?? 0, classCounts.valid[i] ?? 0, classCounts.test[i] ?? 0]),
  );
  return [...header, classes, ...issueLines(v)].join('\n');
}

/** Skipped files, leakage, duplicates and imbalance: what the user may want to fix in the source. */
function issueLines(v: DatasetVersion): string[] {
  const r = v.report;
  const lines: string[] = [];
  if (r.skipped.length > 0) {
    lines.push(`skipped ${plural(r.skipped.length, 'file')}:`);
    lines.push(...r.skipped.slice(0, 20).map((s) => `  ${printable(s.path)}: ${s.reason}`));
    if (r.skipped.length > 20) lines.push(`  ... and ${r.skipped.length - 20} more (see --json)`);
  }
  const leaks = r.duplicates.filter(isLeak);
  if (leaks.length > 0) {
    lines.push(`WARNING: leakage: ${plural(leaks.length, 'image')} ${leaks.length === 1 ? 'is' : 'are'} in more than one split, so evaluation sees training images:`);
    lines.push(...leaks.slice(0, 10).map((d) => `  ${d.paths.map(printable).join('  =  ')}`));
    if (leaks.length > 10) lines.push(`  ... and ${leaks.length - 10} more (see --json)`);
  }
  const dupes = r.duplicates.length - leaks.length;
  if (dupes > 0) lines.push(`${plural(dupes, 'image')} duplicated within a split (see --json for the paths)`);
  const { min, max, ratio, smallest } = r.imbalance;
  const who = `smallest: ${preview(smallest, 3)}`;
  if (ratio === null) lines.push(`WARNING: imbalance: ${plural(smallest.length, 'class')} without training images (${who})`);
  else if (ratio > 1) lines.push(`imbalance: ${min}-${max} training images per class (max/min ${ratio}; ${who})`);
  else lines.push(`balanced: ${max} training images per class`);
  return lines;
}

function preview(names: string[], n: number): string {
  const shown = names.slice(0, n).map(printable).join(', ');
  return names.length <= n ? shown : `${shown}, ...`;
}
