import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { build } from 'esbuild';
import { Errors, KennelError } from '../core/index.js';

const MAX_BUNDLE_BYTES = 20 * 1024 * 1024;

// the bundle is ESM; bundled CommonJS dependencies that call require() get a real one
const REQUIRE_SHIM = "import { createRequire as __kennelCreateRequire } from 'node:module'; const require = __kennelCreateRequire(import.meta.url);";

/**
 * Bundles a handler file (.ts, .mts, .js, .mjs) and everything it imports into one ESM module,
 * like a Lambda deployment package: the function keeps working when the source changes or
 * moves, and TypeScript needs no runtime loader. The module must export `handler`.
 */
export async function bundleHandler(file: string): Promise<Uint8Array> {
  const path = resolve(file);
  if (!existsSync(path) || !statSync(path).isFile()) throw Errors.InvalidRequest(`The handler file ${file} does not exist.`, 'Pass --handler ./path/to/handler.ts (or .js).');
  if (!/\.(m?ts|m?js|cjs)$/.test(path)) throw Errors.InvalidRequest(`The handler ${file} is not a .ts or .js file.`);
  let result;
  try {
    result = await build({ entryPoints: [path], bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, metafile: true, outfile: 'handler.mjs', banner: { js: REQUIRE_SHIM }, logLevel: 'silent' });
  } catch (e) {
    const first = (e as { errors?: Array<{ text: string; location?: { file: string; line: number } }> }).errors?.[0];
    const where = first?.location ? ` (${resolve(first.location.file)}:${first.location.line})` : '';
    throw Errors.InvalidRequest(`The handler ${file} could not be bundled: ${first?.text ?? (e as Error).message}${where}.`, 'Fix the error; the handler and its imports are bundled into one module.');
  }
  const output = Object.values(result.metafile.outputs)[0];
  if (!output?.exports.includes('handler')) throw Errors.InvalidRequest(`The handler ${file} does not export a function named handler.`, 'Add: export async function handler(event, context) { ... }');
  const code = result.outputFiles[0]!.contents;
  if (code.length > MAX_BUNDLE_BYTES) throw Errors.InvalidRequest(`The bundled handler is ${code.length} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit.`);
  return code;
}
