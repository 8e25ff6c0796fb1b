import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import type { Command } from 'commander';
import { Errors, KennelError } from '../../core/index.js';
import { sniffImageType } from '../../net/index.js';
import { invokeEndpoint } from '../../server/index.js';
import type { InvocationResult } from '../../serving/index.js';
import { defaultHome } from '../../store/index.js';
import { jsonCommand, type CommandContext } from '../output.js';
import { number } from '../options.js';

const BY_EXTENSION: Record<string, string> = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp', '.gif': 'image/gif', '.tif': 'image/tiff', '.tiff': 'image/tiff', '.avif': 'image/avif' };

const KEY_HINT = (endpoint: string) =>
  `Pass a key allowed endpoint:Invoke on endpoint/${endpoint} with --key KEY or the KENNEL_API_KEY environment variable; create one with kennel keys create NAME --allow endpoint:Invoke:endpoint/${endpoint}.`;

export function registerInvoke(program: Command): void {
  jsonCommand(
    program
      .command('invoke <endpoint> <file>')
      .description('Classify an image with a running endpoint (POST /endpoints/NAME/invocations on the daemon of KENNEL_HOME). Without a key, the workspace owner on the daemon\'s machine is served through the admin API.')
      .option('--top-k <k>', 'predictions to return', number('--top-k', { int: true, min: 1, max: 1000 }), 5)
      .option('--key <key>', 'API key allowed endpoint:Invoke on the endpoint (default: $KENNEL_API_KEY)'),
    {
      jsonHelp: 'print the response JSON',
      action: async ({ opts }: CommandContext<{ topK: number; key?: string; json?: boolean }>, endpoint: string, file: string) => {
        let bytes: Buffer;
        try {
          if (!statSync(file).isFile()) throw new Error('not a file');
          bytes = readFileSync(file);
        } catch {
          throw Errors.InvalidRequest(`${file} is not a readable file.`, 'Pass the path of an image file.');
        }
        // the server checks the bytes; the type is only a label, from the bytes when they are an image we know
        const type = sniffImageType(bytes) ?? BY_EXTENSION[extname(file).toLowerCase()] ?? 'application/octet-stream';
        const key = opts.key ?? (process.env.KENNEL_API_KEY || undefined);
        const { result, asOwner } = await invokeEndpoint(defaultHome(), endpoint, bytes, type, opts.topK, key).catch((e: unknown) => {
          throw e instanceof KennelError && (e.status === 401 || e.status === 403) ? e.withHint(KEY_HINT(endpoint)) : e;
        });
        // on stderr, so --json output stays one document
        if (asOwner) process.stderr.write('note: no API key given; invoking as the workspace owner through the admin API (pass --key or set KENNEL_API_KEY to test a key)\n');
        return { r: result as InvocationResult, file };
      },
      json: ({ r }) => r,
      human: ({ r, file }) => [`${file}: ${r.model} (variant ${r.variant})`, ...r.predictions.map((p) => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`)].join('\n'),
    },
  );
}
