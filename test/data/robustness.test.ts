import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { printable } from '../../src/core/index.js';
import { importDataset } from '../../src/data/index.js';
import { repoRoot, tmpDir, tmpHome } from '../helpers/paths.js';
import { distinctJpeg, freshWorkspace } from './fixtures.js';

/** A flat dataset of two classes with two images each. */
async function twoClasses(): Promise<string> {
  const dir = join(tmpDir(), 'photos');
  for (const [c, cls] of ['cats', 'dogs'].entries()) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (let i = 0; i < 5; i++) writeFileSync(join(dir, cls, `${i}.jpg`), await distinctJpeg(c * 10 + i));
  }
  return dir;
}

test('a file or class folder whose name is not valid UTF-8 is skipped with a reason; the rest is imported', async () => {
  const dir = await twoClasses();
  const badFile = Buffer.concat([Buffer.from(join(dir, 'cats') + '/caf'), Buffer.from([0xe9]), Buffer.from('.jpg')]);
  writeFileSync(badFile, await distinctJpeg(99));
  const badFolder = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0xff, 0xfe]), Buffer.from('birds')]);
  mkdirSync(badFolder);
  writeFileSync(Buffer.concat([badFolder, Buffer.from('/0.jpg')]), await distinctJpeg(98));
  const ws = freshWorkspace();
  try {
    const v = await importDataset(ws, dir, { name: 'pets' });
    assert.deepEqual(v.classes, ['cats', 'dogs']);
    assert.equal(v.items.length, 10);
    const reasons = Object.fromEntries(v.report.skipped.map((s) => [s.path, s.reason]));
    assert.match(reasons['cats/caf\\xe9.jpg'] ?? '', /not valid UTF-8/, JSON.stringify(v.report.skipped));
    assert.match(reasons['\\xff\\xfebirds/'] ?? '', /not valid UTF-8/, JSON.stringify(v.report.skipped));
  } finally {
    ws.close();
  }
});

test('links to files outside the imported folder are not followed unless asked, and are listed', async () => {
  const dir = await twoClasses();
  const outside = join(tmpDir(), 'outside.jpg');
  writeFileSync(outside, await distinctJpeg(77));
  const secret = join(tmpDir(), 'master.key');
  writeFileSync(secret, 'not for import');
  symlinkSync(outside, join(dir, 'dogs', 'outside.jpg'));
  symlinkSync(secret, join(dir, 'dogs', 'key.jpg'));
  symlinkSync(join(dir, 'cats', '0.jpg'), join(dir, 'dogs', 'inside.jpg')); // inside the folder: fine
  const ws = freshWorkspace();
  try {
    const v = await importDataset(ws, dir, { name: 'pets' });
    const skipped = new Map(v.report.skipped.map((s) => [s.path, s.reason]));
    for (const path of ['dogs/outside.jpg', 'dogs/key.jpg']) assert.match(skipped.get(path) ?? '', /outside the imported folder, not followed \(import with --follow-symlinks/, path);
    assert.ok(v.items.some((i) => i.path === 'dogs/inside.jpg'), 'a link inside the folder is imported');
    assert.ok(!v.items.some((i) => i.path === 'dogs/outside.jpg'));

    const followed = await importDataset(ws, dir, { name: 'pets', followSymlinks: true });
    assert.ok(followed.items.some((i) => i.path === 'dogs/outside.jpg'), '--follow-symlinks imports it');
    assert.match(followed.report.skipped.find((s) => s.path === 'dogs/key.jpg')?.reason ?? '', /not a|image/i, 'the non-image is then checked and skipped as such');
  } finally {
    ws.close();
  }
});

test('the CLI lists what was skipped (escaped names in human output) and has --follow-symlinks', async () => {
  const dir = await twoClasses();
  writeFileSync(join(dir, 'cats', 'evil\u202Egpj.exe'), 'not an image');
  symlinkSync('/etc/hostname', join(dir, 'cats', 'host.jpg'));
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'data', 'import', dir, '--name', 'pets', ...args], { cwd: repoRoot, env: { ...process.env, KENNEL_HOME: tmpHome() }, encoding: 'utf8' });
  const human = run([]);
  assert.equal(human.status, 0, human.stderr);
  assert.match(human.stdout, /cats\/evil\\u\{202E\}gpj\.exe: /);
  assert.ok(!human.stdout.includes('\u202E'), 'no raw bidi control reaches the terminal');
  assert.match(human.stdout, /cats\/host\.jpg: link to a file outside the imported folder/);
  const json = JSON.parse(run(['--json']).stdout) as { skipped: Array<{ path: string; reason: string }> };
  assert.ok(json.skipped.some((s) => s.path === 'cats/host.jpg' && /--follow-symlinks/.test(s.reason)));
  const help = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'data', 'import', '--help'], { cwd: repoRoot, encoding: 'utf8' });
  assert.match(help.stdout, /--follow-symlinks/);
  assert.equal(printable('a\nb\u2066c'), 'a\\u{000A}b\\u{2066}c');
  // names in error messages too: two class folders that read as one class
  mkdirSync(join(dir, 'dog\u202Es'));
  writeFileSync(join(dir, 'dog\u202Es', 'x.jpg'), await distinctJpeg(55));
  mkdirSync(join(dir, 'dog\u202Es_'));
  writeFileSync(join(dir, 'dog\u202Es_', 'y.jpg'), await distinctJpeg(56));
  const clash = run([]);
  assert.equal(clash.status, 1, clash.stderr);
  assert.match(clash.stderr, /^error: .*dog\\u\{202E\}s/m);
  assert.ok(!clash.stderr.includes('\u202E'));
});
