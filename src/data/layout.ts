import { readdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { Errors, KennelError, escapeBytes, utf8Name } from '../core/index.js';
import type { Layout, SkippedFile, Split } from './types.js';

/** A file found under a class folder, not yet checked. */
export interface Candidate {
  /** relative to the dataset root, forward slashes */
  path: string;
  absPath: string;
  /** the class folder's name, e.g. "001.Australian_Shepherd" */
  classFolder: string;
  /** given by the layout; undefined in a flat layout (Kennel assigns it) */
  split?: Split;
}

export interface Scan {
  root: string;
  layout: Layout;
  candidates: Candidate[];
  /** class folders, sorted */
  classFolders: string[];
  skipped: SkippedFile[];
}

const SPLIT_NAMES: Record<string, Split> = {
  train: 'train',
  training: 'train',
  valid: 'valid',
  val: 'valid',
  validation: 'valid',
  test: 'test',
  testing: 'test',
};

/** Operating-system clutter that is never part of a dataset, so it is not even reported. */
export function isIgnored(name: string): boolean {
  return name.startsWith('.') || name === '__MACOSX' || name === 'Thumbs.db' || name === 'desktop.ini';
}

/** Code-point order: the same on every machine, unlike localeCompare. */
export const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** "001.Australian_Shepherd" → "Australian Shepherd" */
export function displayName(classFolder: string): string {
  const name = classFolder.replace(/^\d+[._-]/, '').replace(/_/g, ' ').replace(/\s+/g, ' ').trim();
  return name || classFolder;
}

interface Listing {
  dirs: string[];
  files: string[];
  /** entries not listed above, with why: links to folders (never followed, so a link loop cannot hang the scan), links out of the imported folder, names that are not UTF-8 */
  refused: Array<{ name: string; reason: string }>;
}

/** What a scan may follow: links to files inside the imported folder, or anywhere with followSymlinks. */
interface ScanScope {
  /** the imported folder, resolved (links and all) */
  realRoot: string;
  followSymlinks: boolean;
}

async function list(dir: string, scope: ScanScope): Promise<Listing> {
  const out: Listing = { dirs: [], files: [], refused: [] };
  for (const e of await readdir(Buffer.from(dir), { withFileTypes: true, encoding: 'buffer' })) {
    const name = utf8Name(e.name);
    if (name === undefined) {
      out.refused.push({ name: `${escapeBytes(e.name)}${e.isDirectory() ? '/' : ''}`, reason: 'the name is not valid UTF-8, so it was not read; rename it to import it' });
      continue;
    }
    if (isIgnored(name)) continue;
    if (e.isDirectory()) out.dirs.push(name);
    else if (e.isFile()) out.files.push(name);
    else if (e.isSymbolicLink()) {
      const link = join(dir, name);
      const [target, real] = await Promise.all([stat(link).catch(() => undefined), realpath(link).catch(() => undefined)]);
      if (target?.isDirectory()) out.refused.push({ name: `${name}/`, reason: 'link to a folder, not followed' });
      else if (!target?.isFile() || real === undefined) out.refused.push({ name, reason: 'link to nothing readable (broken link)' });
      else if (scope.followSymlinks || real.startsWith(scope.realRoot + sep)) out.files.push(name);
      else out.refused.push({ name, reason: 'link to a file outside the imported folder, not followed (import with --follow-symlinks to allow)' });
    }
  }
  out.dirs.sort(byString);
  out.files.sort(byString);
  out.refused.sort((a, b) => byString(a.name, b.name));
  return out;
}

/** Maps the split folders of a listing, or returns undefined when this is not a split layout. */
function splitFolders(listing: Listing): Map<string, Split> | undefined {
  const found = new Map<string, Split>();
  for (const d of listing.dirs) {
    const split = SPLIT_NAMES[d.toLowerCase()];
    if (!split) continue;
    const clash = [...found].find(([, s]) => s === split);
    if (clash) throw Errors.InvalidRequest(`the folders "${clash[0]}" and "${d}" both look like the ${split} split.`, 'Keep one of them, or rename the other.');
    found.set(d, split);
  }
  if (![...found.values()].includes('train')) return undefined;
  // "train" alone next to other folders is more likely a class called "train" than a split
  if (found.size === 1 && listing.dirs.length > 1) return undefined;
  return found;
}

/**
 * Finds the dataset root: the folder itself, or the single folder it wraps (a zip of
 * `dogImages/` holds `dogImages/train/...`), descending while a folder holds nothing but one
 * folder of folders.
 */
async function findRoot(dir: string, scope: ScanScope): Promise<{ root: string; listing: Listing; above: SkippedFile[] }> {
  let root = dir;
  let rel = '';
  let listing = await list(root, scope);
  // what wrapper folders held besides their one folder (paths relative to `dir`)
  const above: SkippedFile[] = [];
  for (let depth = 0; depth < 4; depth++) {
    const only = listing.dirs[0];
    if (splitFolders(listing) || listing.files.length > 0 || listing.dirs.length !== 1 || !only) break;
    const inner = await list(join(root, only), scope);
    if (inner.dirs.length === 0) break; // the single folder is a class folder
    skipRefused(rel, listing, above);
    root = join(root, only);
    rel = under(rel, only);
    listing = inner;
  }
  return { root, listing, above };
}

const under = (rel: string, name: string): string => (rel ? `${rel}/${name}` : name);

function skipRefused(rel: string, listing: Listing, skipped: SkippedFile[]): void {
  for (const r of listing.refused) skipped.push({ path: under(rel, r.name), reason: r.reason });
}

/** Every file below `rel`, as paths relative to the dataset root. */
async function walk(rootAbs: string, rel: string, out: Array<{ path: string; absPath: string }>, skipped: SkippedFile[], scope: ScanScope): Promise<void> {
  const listing = await list(join(rootAbs, rel), scope);
  for (const f of listing.files) out.push({ path: under(rel, f), absPath: join(rootAbs, rel, f) });
  skipRefused(rel, listing, skipped);
  for (const d of listing.dirs) await walk(rootAbs, under(rel, d), out, skipped, scope);
}

/**
 * Lists a dataset folder: either `{train,valid,test}/CLASS/*` (splits kept as given) or
 * `CLASS/*` (flat: Kennel splits it). Images may sit at any depth below their class folder.
 * Files outside any class folder are reported as skipped, and so are names that are not UTF-8,
 * links to folders, and links to files outside `dir` (unless `followSymlinks`).
 */
export async function scanDataset(dir: string, opts: { followSymlinks?: boolean } = {}): Promise<Scan> {
  const scope: ScanScope = { realRoot: await realpath(dir), followSymlinks: opts.followSymlinks ?? false };
  const { root, listing, above } = await findRoot(dir, scope);
  const skipped: SkippedFile[] = [...above];
  const candidates: Candidate[] = [];
  const classFolders = new Set<string>();

  const addClassFolder = async (rel: string, classFolder: string, split: Split | undefined) => {
    classFolders.add(classFolder);
    const files: Array<{ path: string; absPath: string }> = [];
    await walk(root, rel, files, skipped, scope);
    for (const f of files) candidates.push({ ...f, classFolder, split });
  };

  const splits = splitFolders(listing);
  if (splits) {
    for (const d of listing.dirs) {
      const split = splits.get(d);
      if (!split) {
        const stray: Array<{ path: string; absPath: string }> = [];
        await walk(root, d, stray, skipped, scope);
        for (const f of stray) skipped.push({ path: f.path, reason: 'outside the train/valid/test folders' });
        continue;
      }
      const inner = await list(join(root, d), scope);
      for (const f of inner.files) skipped.push({ path: `${d}/${f}`, reason: 'not inside a class folder' });
      skipRefused(d, inner, skipped);
      for (const c of inner.dirs) await addClassFolder(`${d}/${c}`, c, split);
    }
  } else {
    for (const c of listing.dirs) await addClassFolder(c, c, undefined);
  }
  for (const f of listing.files) skipped.push({ path: f, reason: splits ? 'outside the train/valid/test folders' : 'not inside a class folder' });
  skipRefused('', listing, skipped);

  if (classFolders.size === 0) {
    throw Errors.InvalidRequest(
      `no class folders were found in ${dir}.`,
      'Put images in one folder per class (CLASS/*.jpg), or in train/, valid/ and test/ folders that each hold the class folders.',
    );
  }
  candidates.sort((a, b) => byString(a.path, b.path));
  return { root, layout: splits ? 'splits' : 'flat', candidates, classFolders: [...classFolders].sort(byString), skipped };
}
