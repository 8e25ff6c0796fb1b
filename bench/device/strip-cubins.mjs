// Zeroes the code for GPUs other than one architecture in a CUDA library's fat binaries, so that the
// library compresses to a fraction of its size (ORT's CUDA provider: 165 MB xz -> 38 MB for sm_90).
// The layout read here is the fat binary container's: a 16-byte header (magic 0xBA55ED50, version,
// header size, payload size), then entries, each a header (kind, version, header size, padded payload
// size, ..., the architecture at byte 28) and its payload.
//   node bench/device/strip-cubins.mjs IN OUT 90
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output, keepArg] = process.argv.slice(2);
if (!input || !output || !keepArg) {
  process.stderr.write('usage: node bench/device/strip-cubins.mjs IN OUT ARCH (90 for the H100 and H200)\n');
  process.exit(2);
}
const keep = Number(keepArg);
const data = readFileSync(input);
const MAGIC = Buffer.from([0x50, 0xed, 0x55, 0xba]);
let pos = 0;
let kept = 0;
let zeroed = 0;
for (let at = data.indexOf(MAGIC, pos); at >= 0; at = data.indexOf(MAGIC, pos)) {
  const headerSize = data.readUInt16LE(at + 6);
  const size = Number(data.readBigUInt64LE(at + 8));
  const end = at + 16 + size;
  if (headerSize !== 16 || size === 0 || end > data.length) {
    pos = at + 4;
    continue;
  }
  // check every entry before touching any: a false match of the magic must change nothing
  const entries = [];
  let e = at + 16;
  while (e < end) {
    const kind = data.readUInt16LE(e);
    const entryHeader = data.readUInt32LE(e + 4);
    const padded = data.readUInt32LE(e + 8);
    if (![1, 2, 4, 8, 16].includes(kind) || entryHeader < 64 || e + entryHeader + padded > end) break;
    entries.push({ from: e + entryHeader, to: e + entryHeader + padded, arch: data.readUInt32LE(e + 28) });
    e += entryHeader + padded;
  }
  if (e !== end) {
    pos = at + 4;
    continue;
  }
  for (const entry of entries) {
    if (entry.arch === keep) kept += entry.to - entry.from;
    else {
      data.fill(0, entry.from, entry.to);
      zeroed += entry.to - entry.from;
    }
  }
  pos = end;
}
writeFileSync(output, data);
process.stdout.write(`kept ${(kept / 1e6).toFixed(1)} MB of sm_${keep} code, zeroed ${(zeroed / 1e6).toFixed(1)} MB\n`);
