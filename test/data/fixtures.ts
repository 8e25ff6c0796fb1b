import { cpSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { openWorkspace, type Workspace } from '../../src/store/index.js';
import { sharedDir, tmpDir, tmpHome } from '../helpers/paths.js';

/** 25 breeds in dogImages layout: 4 train, 1 valid, 1 test each. */
export const breedsMini = (): string => join(sharedDir(), 'data', 'breeds-mini');

/** A writable copy of breeds-mini, for tests that plant or add files. */
export function copyOfBreedsMini(): string {
  const dir = join(tmpDir(), 'breeds-mini');
  cpSync(breedsMini(), dir, { recursive: true });
  return dir;
}

/** A workspace in a fresh temp home; close it at the end of the test. */
export function freshWorkspace(): Workspace {
  return openWorkspace(tmpHome());
}

/** A small JPEG whose bytes differ for every `seed`: a new image for the artifact store. */
export function distinctJpeg(seed: number): Promise<Buffer> {
  return sharp({ create: { width: 24, height: 16, channels: 3, background: { r: seed % 256, g: (seed * 7) % 256, b: (seed * 13) % 256 } } })
    .jpeg()
    .toBuffer();
}
