import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { progressBars } from '../../src/cli/output.js';
import { Rng, seedFrom } from '../../src/core/index.js';
import { sha256 } from '../../src/store/index.js';
import { benchDir, shared } from './report.js';

/**
 * Bump when the generated images change for the same spec (new augmentation, sizes, naming):
 * the cache key includes it, so a stale set is never reused.
 */
export const GENERATOR_VERSION = 1;

export type SplitName = 'train' | 'valid' | 'test';
const SPLITS: readonly SplitName[] = ['train', 'valid', 'test'];

export interface DogSetSpec {
  classes: number;
  /** images per split, spread over the classes as evenly as possible */
  images: Record<SplitName, number>;
  /** nominal image size; each image varies by a few percent, like a real photo set */
  width: number;
  height: number;
  quality: number;
  seed: number;
}

/** The Udacity dogImages shape: 133 breeds, 6,680 / 835 / 836 JPEGs of about 500x375. */
export const DOG_IMAGES: DogSetSpec = { classes: 133, images: { train: 6680, valid: 835, test: 836 }, width: 500, height: 375, quality: 85, seed: 1 };

export interface DogSet {
  /** dataset root: {train,valid,test}/NNN.Breed_Name/*.jpg */
  dir: string;
  images: number;
  /** files per split, in folder order */
  files: Record<SplitName, string[]>;
  /** false when the set came from the cache */
  generated: boolean;
  seconds: number;
}

interface ClassIdentity {
  folder: string;
  source: string;
  /** hue rotation in degrees that tints every image of the class */
  hue: number;
}

/** Source photos: every JPEG under the given folders, in a machine-independent order. */
export function listSources(dirs: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.jpe?g$/i.test(e.name)) out.push(p);
    }
  };
  for (const d of dirs) walk(d);
  return out;
}

/** "n02085620_Chihuahua.JPEG", "Beagle_00001.jpg" → "Chihuahua", "Beagle" */
function breedOf(file: string): string {
  const stem = basename(file, extname(file)).replace(/^n\d+_/, '').replace(/_\d+$/, '');
  return stem.replace(/[^A-Za-z0-9_-]/g, '_') || 'Dog';
}

/**
 * Class i = one source photo (distinct per class while sources last) plus a hue tint, so each
 * class has a consistent look the head can learn, and the split is not trivially separable.
 */
function classIdentities(spec: DogSetSpec, sources: string[]): ClassIdentity[] {
  const order = new Rng(seedFrom(spec.seed, 'classes')).shuffle(sources.map((_, i) => i));
  const used = new Map<string, number>();
  return Array.from({ length: spec.classes }, (_, c) => {
    const source = sources[order[c % order.length]!]!;
    const breed = breedOf(source);
    const n = (used.get(breed) ?? 0) + 1;
    used.set(breed, n);
    const hue = Math.round((c * 137.508) % 360);
    return { folder: `${String(c + 1).padStart(3, '0')}.${n > 1 ? `${breed}_${n}` : breed}`, source, hue };
  });
}

/** Images of class c in a split of `total` images: an even share, the remainder to the first classes. */
const share = (total: number, classes: number, c: number): number => Math.floor(total / classes) + (c < total % classes ? 1 : 0);

type Matrix3 = [[number, number, number], [number, number, number], [number, number, number]];

/**
 * Hue rotation by `degrees` scaled by `brightness`, as one RGB matrix (the CSS hue-rotate
 * filter): the same look as sharp's modulate() at a third of its cost, which goes through LCh.
 */
export function hueBrightness(degrees: number, brightness: number): Matrix3 {
  const a = Math.cos((degrees * Math.PI) / 180);
  const b = Math.sin((degrees * Math.PI) / 180);
  const m: Matrix3 = [
    [0.213 + 0.787 * a - 0.213 * b, 0.715 - 0.715 * a - 0.715 * b, 0.072 - 0.072 * a + 0.928 * b],
    [0.213 - 0.213 * a + 0.143 * b, 0.715 + 0.285 * a + 0.14 * b, 0.072 - 0.072 * a - 0.283 * b],
    [0.213 - 0.213 * a - 0.787 * b, 0.715 - 0.715 * a + 0.715 * b, 0.072 + 0.928 * a + 0.072 * b],
  ];
  return m.map((row) => row.map((v) => v * brightness)) as Matrix3;
}

/** One augmented photo: random crop and size, flip, brightness and hue jitter around the class tint, JPEG. */
async function renderImage(src: { data: Buffer; width: number; height: number }, id: ClassIdentity, spec: DogSetSpec, rng: Rng): Promise<Buffer> {
  const aspect = (spec.width / spec.height) * Math.exp(rng.uniform(-0.1, 0.1));
  const area = rng.uniform(0.5, 1) * src.width * src.height;
  const w = Math.max(16, Math.min(src.width, Math.round(Math.sqrt(area * aspect))));
  const h = Math.max(16, Math.min(src.height, Math.round(Math.sqrt(area / aspect))));
  const left = rng.int(src.width - w + 1);
  const top = rng.int(src.height - h + 1);
  const outW = Math.round(spec.width * rng.uniform(0.92, 1.08));
  const outH = Math.round(outW / aspect);
  let img = sharp(src.data, { raw: { width: src.width, height: src.height, channels: 3 } })
    .extract({ left, top, width: w, height: h })
    .resize(outW, outH, { fit: 'fill' });
  if (rng.next() < 0.5) img = img.flop();
  return img
    .recomb(hueBrightness(id.hue + rng.uniform(-12, 12), rng.uniform(0.8, 1.2)))
    .jpeg({ quality: spec.quality })
    .toBuffer();
}

/** Cache key: generator version, spec and the source files' content. */
function cacheKey(spec: DogSetSpec, sources: string[]): string {
  const h = sha256(JSON.stringify({ v: GENERATOR_VERSION, spec, sources: sources.map((s) => sha256(readFileSync(s))) }));
  return `dogset-v${GENERATOR_VERSION}-${spec.classes}c-${spec.images.train + spec.images.valid + spec.images.test}-${h.slice(0, 12)}`;
}

function listFiles(root: string): Record<SplitName, string[]> {
  const files = { train: [], valid: [], test: [] } as Record<SplitName, string[]>;
  for (const split of SPLITS)
    for (const cls of readdirSync(join(root, split)).sort()) for (const f of readdirSync(join(root, split, cls)).sort()) files[split].push(join(root, split, cls, f));
  return files;
}

/**
 * A dogImages-shaped JPEG set generated from a few hundred source photos, deterministic by
 * seed, cached under `cacheRoot` so reruns skip generation. Generation writes to a temp folder
 * renamed into place at the end, so an interrupted run leaves no half set behind.
 */
export async function dogSet(spec: DogSetSpec, sources: string[], cacheRoot: string, onProgress?: (done: number, total: number) => void): Promise<DogSet> {
  if (sources.length === 0) throw new Error('no source photos found');
  const started = performance.now();
  const key = cacheKey(spec, sources);
  const home = join(cacheRoot, key);
  const dir = join(home, 'images');
  const total = spec.images.train + spec.images.valid + spec.images.test;
  const finish = (generated: boolean): DogSet => ({ dir, images: total, files: listFiles(dir), generated, seconds: (performance.now() - started) / 1000 });
  if (existsSync(join(home, 'complete.json'))) return finish(false);

  rmSync(home, { recursive: true, force: true });
  const tmp = join(cacheRoot, `.${key}.${process.pid}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  const ids = classIdentities(spec, sources);
  let done = 0;
  try {
    for (const [c, id] of ids.entries()) {
      const { data, info } = await sharp(id.source).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      const src = { data, width: info.width, height: info.height };
      const jobs: Array<Promise<void>> = [];
      for (const split of SPLITS) {
        const folder = join(tmp, 'images', split, id.folder);
        mkdirSync(folder, { recursive: true });
        for (let k = 0; k < share(spec.images[split], spec.classes, c); k++) {
          const rng = new Rng(seedFrom(spec.seed, c, split, k));
          const file = join(folder, `${id.folder.slice(4)}_${split}_${String(k + 1).padStart(5, '0')}.jpg`);
          // every image of a class at once: sharp queues them on the libuv pool (4 threads by default)
          jobs.push(renderImage(src, id, spec, rng).then((jpg) => {
            writeFileSync(file, jpg);
            onProgress?.(++done, total);
          }));
        }
      }
      await Promise.all(jobs);
    }
    const manifest = { generator: GENERATOR_VERSION, spec, classes: ids.map((i) => ({ folder: i.folder, source: basename(i.source), hue: i.hue })) };
    writeFileSync(join(tmp, 'complete.json'), JSON.stringify(manifest, null, 2));
    renameSync(tmp, home);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // another bench run generating the same set finished first: its copy is identical
    if (existsSync(join(home, 'complete.json'))) return finish(false);
    throw e;
  }
  return finish(true);
}

/**
 * The generated set a bench runs on: sources are the shared photos, generation shows a progress
 * bar and is cached under bench/.cache, and one line says which set was used.
 */
export async function benchDogSet(spec: DogSetSpec, opts: { json: boolean; log: (line: string) => void }): Promise<DogSet> {
  const sources = listSources([join(shared, 'data/breeds-mini'), join(shared, 'data/real-photos')]);
  const bars = progressBars({ json: opts.json });
  const set = await dogSet(spec, sources, join(benchDir, '.cache'), (done, total) => bars({ phase: 'generate images', done, total }));
  bars.end();
  opts.log(set.generated ? `generated ${set.images} images in ${set.seconds.toFixed(1)}s: ${set.dir}` : `dataset from cache: ${set.dir}`);
  return set;
}
