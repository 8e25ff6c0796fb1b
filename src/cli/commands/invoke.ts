import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import type { Command } from 'commander';
import { KennelError } from '../../core/errors.js';
import { sniffImageType } from '../../net/index.js';
import { invokeEndpoint } from '../../server/index.js';
import type { InvocationResult } from '../../serving/index.js';
import { defaultHome } from '../../store/index.js';
import { emit, runAction } from '../output.js';
import { number } from '../options.js';

const BY_EXTENSION: Record<string, string> = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp', '.gif': 'image/gif', '.tif': 'image/tiff', '.tiff': 'image/tiff', '.avif': 'image/avif' };

export function registerInvoke(program: Command): void {
  program
    .command('invoke <endpoint> <file>')
    .description('Classify an image with a running endpoint (POST /endpoints/NAME/invocations on the daemon of KENNEL_HOME).')
    .option('--top-k <k>', 'predictions to return', number('--top-k', { int: true, min: 1, max: 1000 }), 5)
    .option('--key <key>', 'API key allowed endpoint:Invoke on the endpoint (default: $KENNEL_API_KEY)')
    .option('--json', 'print the response JSON')
    .action((endpoint: string, file: string, opts: { topK: number; key?: string; json?: boolean }) =>
      runAction(async () => {
        let bytes: Buffer;
        try {
          if (!statSync(file).isFile()) throw new Error('not a file');
          bytes = readFileSync(file);
        } catch {
          throw new KennelError(`${file} is not a readable file.`, 'Pass the path of an image file.');
        }
        // the server checks the bytes; the type is only a label, from the bytes when they are an image we know
        const type = sniffImageType(bytes) ?? BY_EXTENSION[extname(file).toLowerCase()] ?? 'application/octet-stream';
        const r = (await invokeEndpoint(defaultHome(), endpoint, bytes, type, opts.topK, opts.key ?? process.env.KENNEL_API_KEY)) as InvocationResult;
        emit(opts, r, () => [`${file}: ${r.model} (variant ${r.variant})`, ...r.predictions.map((p) => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`)].join('\n'));
      }),
    );
}
