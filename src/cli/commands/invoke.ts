import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import type { Command } from 'commander';
import { Errors, KennelError } from '../../core/index.js';
import { sniffImageType } from '../../net/index.js';
import { asyncRequestStatus, invokeEndpoint, invokeEndpointAsync } from '../../server/index.js';
import type { AsyncRequestStatus, InvocationResult } from '../../serving/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { uploadArtifact } from './artifacts.js';
import { defaultHome } from '../../store/index.js';
import { jsonCommand, type CommandContext } from '../output.js';
import { number } from '../options.js';

const BY_EXTENSION: Record<string, string> = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp', '.gif': 'image/gif', '.tif': 'image/tiff', '.tiff': 'image/tiff', '.avif': 'image/avif' };

const KEY_HINT = (endpoint: string) =>
  `Pass a key allowed endpoint:Invoke on endpoint/${endpoint} with --key KEY or the KENNEL_API_KEY environment variable; create one with kennel keys create NAME --allow endpoint:Invoke:endpoint/${endpoint}.`;

type AsyncOutcome = { accepted: { InferenceId: string; OutputLocation: string; FailureLocation: string }; status?: AsyncRequestStatus & { answer?: InvocationResult } };

/** Polls a request until it completes or fails, or `timeoutS` passes (then its last status). */
async function waitFor(endpoint: string, id: string, key: string, timeoutS: number, signal: AbortSignal): Promise<AsyncRequestStatus & { answer?: InvocationResult }> {
  const limit = Date.now() + timeoutS * 1000;
  for (let delay = 100; ; delay = Math.min(1000, delay * 2)) {
    const s = await asyncRequestStatus<AsyncRequestStatus & { answer?: InvocationResult }>(defaultHome(), endpoint, id, key);
    if (s.status === 'completed' || s.status === 'failed' || Date.now() > limit || signal.aborted) return s;
    await sleep(delay);
  }
}

const predictionsText = (r: InvocationResult): string[] => r.predictions.map((p) => `  ${(p.score * 100).toFixed(1).padStart(5)}%  ${p.label}`);

export function registerInvoke(program: Command): void {
  jsonCommand(
    program
      .command('invoke <endpoint> <input>')
      .description(
        "Classify an image with a running endpoint (POST /endpoints/NAME/invocations on the daemon of KENNEL_HOME). Without a key, the workspace owner on the daemon's machine is served through the admin API. With --async, asynchronous inference (SageMaker InvokeEndpointAsync): INPUT (a file, uploaded to the artifact store first, a kennel://artifacts/SHA256 location or an https URL) is queued and the answer's OutputLocation printed; --wait waits for the answer.",
      )
      .option('--top-k <k>', 'predictions to return', number('--top-k', { int: true, min: 1, max: 1000 }), 5)
      .option('--key <key>', 'API key allowed endpoint:Invoke on the endpoint (default: $KENNEL_API_KEY)')
      .option('--async', 'queue the request (POST /endpoints/NAME/async-invocations) and print its InferenceId and OutputLocation')
      .option('--wait [seconds]', 'with --async: wait for the answer (default at most 300 s)', number('--wait', { min: 1, max: 86_400 }))
      .option('--inference-id <id>', 'with --async: the request\'s id (default: generated)')
      .option('--notify <url>', 'with --async: an https URL POSTed {"InferenceId", "status", ...} when the request completes or fails')
      .option('--ttl <seconds>', 'with --async: the request fails unless answered within this many seconds, 60 to 21600 (X-Amzn-SageMaker-RequestTTLSeconds; default 6 h)', number('--ttl', { int: true, min: 60, max: 21_600 })),
    {
      jsonHelp: 'print the response JSON (with --async: {"InferenceId", "OutputLocation", "FailureLocation"}, and "status" with --wait)',
      action: async ({ opts, ws, signal }: CommandContext<{ topK: number; key?: string; async?: boolean; wait?: number | true; inferenceId?: string; notify?: string; ttl?: number; json?: boolean }>, endpoint: string, file: string): Promise<{ r: InvocationResult; file: string } | AsyncOutcome> => {
        const key = opts.key ?? (process.env.KENNEL_API_KEY || undefined);
        if (opts.async) {
          if (!key) throw Errors.Unauthorized('Asynchronous invocations need an API key.', KEY_HINT(endpoint));
          const location = /^(kennel|https?):\/\//.test(file) ? file : (await uploadArtifact(ws, file)).location;
          const accepted = await invokeEndpointAsync(defaultHome(), endpoint, { inputLocation: location, topK: opts.topK, key, inferenceId: opts.inferenceId, notify: opts.notify, ttlS: opts.ttl }).catch((e: unknown) => {
            throw e instanceof KennelError && (e.status === 401 || e.status === 403) ? e.withHint(KEY_HINT(endpoint)) : e;
          });
          if (opts.wait === undefined) return { accepted };
          return { accepted, status: await waitFor(endpoint, accepted.InferenceId, key, opts.wait === true ? 300 : opts.wait, signal) };
        }
        if (opts.wait !== undefined || opts.inferenceId !== undefined || opts.notify !== undefined || opts.ttl !== undefined) throw Errors.InvalidRequest('--wait, --inference-id, --notify and --ttl go with --async.', 'Add --async, or leave them out.');
        let bytes: Buffer;
        try {
          if (!statSync(file).isFile()) throw new Error('not a file');
          bytes = readFileSync(file);
        } catch {
          throw Errors.InvalidRequest(`${file} is not a readable file.`, 'Pass the path of an image file.');
        }
        // the server checks the bytes; the type is only a label, from the bytes when they are an image we know
        const type = sniffImageType(bytes) ?? BY_EXTENSION[extname(file).toLowerCase()] ?? 'application/octet-stream';
        const { result, asOwner } = await invokeEndpoint(defaultHome(), endpoint, bytes, type, opts.topK, key).catch((e: unknown) => {
          throw e instanceof KennelError && (e.status === 401 || e.status === 403) ? e.withHint(KEY_HINT(endpoint)) : e;
        });
        // on stderr, so --json output stays one document
        if (asOwner) process.stderr.write('note: no API key given; invoking as the workspace owner through the admin API (pass --key or set KENNEL_API_KEY to test a key)\n');
        return { r: result as InvocationResult, file };
      },
      json: (o) => ('accepted' in o ? { ...o.accepted, ...(o.status ? { status: o.status } : {}) } : o.r),
      human: (o) => {
        if ('r' in o) return [`${o.file}: ${o.r.model} (variant ${o.r.variant})`, ...predictionsText(o.r)].join('\n');
        const head = [`queued ${o.accepted.InferenceId}`, `  output: ${o.accepted.OutputLocation} (kennel artifacts download LOCATION)`];
        if (!o.status) return head.join('\n');
        const s = o.status;
        if (s.answer) return [...head, `${s.answer.model} (variant ${s.answer.variant})`, ...predictionsText(s.answer)].join('\n');
        return [...head, s.status === 'failed' ? `failed: ${s.lastError ?? ''}` : `still ${s.status}; ask again with kennel endpoints requests`].join('\n');
      },
    },
  );
}
