// Copies the shared files a GPU run reads (../shared: the models, and the photos scaled to 320 px on
// their shorter side, which the 224 px models never miss) into .devshared at the project root, small
// enough to travel beside .cuda under the 64 MiB carry limit. On the GPU machine: KENNEL_SHARED=$PWD/.devshared
//   node bench/device/shared-pack.mjs [SHARED_DIR]
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import sharp from 'sharp';

const shared = process.argv[2] ?? process.env.KENNEL_SHARED ?? '../shared';
const out = '.devshared';
const walk = (d) => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
rmSync(out, { recursive: true, force: true });
let images = 0;
for (const file of [...walk(join(shared, 'models')), ...walk(join(shared, 'data'))]) {
  const to = join(out, relative(shared, file));
  mkdirSync(dirname(to), { recursive: true });
  if (/\.(jpe?g|png|webp)$/i.test(file)) {
    await sharp(file).rotate().resize(320, 320, { fit: 'outside', withoutEnlargement: true }).toFile(to);
    images++;
  } else copyFileSync(file, to);
}
process.stdout.write(`${images} images scaled into ${out}\n`);
