import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';

/** File names a folder walk picks up as images (a file named explicitly is always tried). */
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp']);

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
