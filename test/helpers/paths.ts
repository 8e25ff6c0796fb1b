import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Read-only shared test material (images, models): $KENNEL_SHARED, default ../shared. */
export function sharedDir(): string {
  return process.env.KENNEL_SHARED ?? path.resolve(repoRoot, '../shared');
}

const created: string[] = [];
process.on('exit', () => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temp folder, removed when the test process exits. */
export function tmpDir(prefix = 'kennel-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** A fresh, empty KENNEL_HOME (pass it to openWorkspace, or as the env of a spawned CLI). */
export function tmpHome(): string {
  return tmpDir('kennel-home-');
}
