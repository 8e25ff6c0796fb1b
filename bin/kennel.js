#!/usr/bin/env node
import { existsSync } from 'node:fs';
const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('error: Kennel is not built yet. Run `npm ci` (or `npm run build`) in the Kennel folder first.');
  process.exit(1);
}
await import(main.href);
