import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sha256 } from '../../src/store/index.ts';
import { BlobCache } from '../../src/store/cache.ts';
import { tmpDir } from '../helpers/paths.ts';

const bootId = existsSync('/proc/sys/kernel/random/boot_id') ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : undefined;

/** Rewrites a cache entry in place with other bytes of the same length (same inode, same size). */
function garbleSameSize(path: string): void {
  const length = readFileSync(path).length;
  chmodSync(path, 0o644);
  writeFileSync(path, Buffer.alloc(length, 0x21), { flag: 'r+' });
}

test('an entry checked in this boot is trusted by the next process without hashing it again; a changed size or another boot is checked', { skip: bootId ? false : 'no boot id on this system: every process checks each entry' }, async () => {
  const root = tmpDir('kennel-cache-');
  const bytes = Buffer.from('features of a training split');
  const sha = sha256(bytes);
  new BlobCache(root, 1 << 20).add(sha, bytes);

  // same bytes length, other content: a process that re-hashed would drop it, so the next one trusts what the first recorded
  garbleSameSize(join(root, sha.slice(0, 2), sha.slice(2)));
  assert.ok(await new BlobCache(root, 1 << 20).lookup(sha), 'the next process trusts the entry checked in this boot');

  // a record written in another boot is not trusted: the entry is hashed, found garbled and dropped
  const record = join(root, 'verified');
  writeFileSync(record, readFileSync(record, 'utf8').replace(bootId!, '00000000-0000-0000-0000-000000000000'));
  assert.equal(await new BlobCache(root, 1 << 20).lookup(sha), undefined, 'checked again after a reboot, and dropped');
  assert.equal(existsSync(join(root, sha.slice(0, 2), sha.slice(2))), false);

  // a file whose size changed since it was recorded is hashed again
  const other = Buffer.from('another split');
  const otherSha = sha256(other);
  new BlobCache(root, 1 << 20).add(otherSha, other);
  const path = join(root, otherSha.slice(0, 2), otherSha.slice(2));
  chmodSync(path, 0o644);
  writeFileSync(path, 'short');
  assert.equal(await new BlobCache(root, 1 << 20).lookup(otherSha), undefined, 'a truncated entry is not trusted');
});

test('an entry that was never checked is hashed on first use, and an intact one is then recorded', async () => {
  const root = tmpDir('kennel-cache-');
  const bytes = Buffer.from('a backbone graph');
  const sha = sha256(bytes);
  // put there by hand (as a crash after the rename might leave it), not through add()
  new BlobCache(root, 1 << 20);
  const path = join(root, sha.slice(0, 2), sha.slice(2));
  mkdirSync(join(root, sha.slice(0, 2)), { recursive: true });
  writeFileSync(path, bytes);
  assert.ok(await new BlobCache(root, 1 << 20).lookup(sha), 'intact: used');
  if (bootId) assert.match(readFileSync(join(root, 'verified'), 'utf8'), new RegExp(`^${sha} \\d+:${bytes.length}$`, 'm'), 'and recorded for later processes');
});
