import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Errors, writeFileAtomic } from '../../core/index.js';
import { artifactOfLocation, openAsyncRequests, parseRequestLocation } from '../../serving/index.js';
import type { Workspace } from '../../store/index.js';
import { jsonCommand, type CommandContext } from '../output.js';
import { queueOf } from '../options.js';

/** The location of an artifact, as asynchronous inference takes it (X-Amzn-SageMaker-InputLocation). */
export const artifactLocation = (sha: string): string => `kennel://artifacts/${sha}`;

/** Stores a file in the workspace's artifact store; its location names it. */
export async function uploadArtifact(ws: Workspace, file: string): Promise<{ location: string; sha256: string; bytes: number }> {
  let bytes: Buffer;
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    bytes = readFileSync(file);
  } catch {
    throw Errors.InvalidRequest(`${file} is not a readable file.`, 'Pass the path of a file.');
  }
  const sha256 = await ws.artifacts.put(bytes);
  return { location: artifactLocation(sha256), sha256, bytes: bytes.length };
}

/** The bytes a location names: an artifact, or an asynchronous request's answer (output) or error. */
async function download(ws: Workspace, location: string): Promise<Buffer> {
  const sha = artifactOfLocation(location);
  if (sha) {
    if (!(await ws.artifacts.has(sha))) throw Errors.NotFound(`There is no artifact ${sha.slice(0, 12)}… in this workspace.`);
    return Buffer.from(await ws.artifacts.get(sha));
  }
  const req = parseRequestLocation(location);
  if (!req) throw Errors.InvalidRequest(`${location.slice(0, 200)} is not a Kennel location.`, 'Locations look like kennel://artifacts/SHA256 or kennel://endpoints/NAME/requests/ID/output.');
  // the daemon's Redis queue when it has one ($KENNEL_QUEUE, as kennel up reads it)
  const requests = await openAsyncRequests(ws, { queue: queueOf(undefined) });
  const r = await requests.status(req.endpoint, req.id).finally(() => requests.close());
  if (!r) throw Errors.NotFound(`Endpoint ${req.endpoint} has no asynchronous request ${req.id}.`, `kennel endpoints requests ${req.endpoint} lists them.`);
  if (req.part === 'error') {
    if (r.status !== 'failed') throw Errors.NotFound(`Request ${r.id} has not failed (it is ${r.status}).`);
    return Buffer.from(JSON.stringify({ error: r.lastError ?? 'failed' }) + '\n');
  }
  if (!r.output) throw Errors.Conflict(`Request ${r.id} is ${r.status}${r.lastError ? `: ${r.lastError}` : ''}; it has no answer${r.status === 'failed' ? '' : ' yet'}.`, r.status === 'failed' ? `Its error: kennel artifacts download ${r.outputLocation.replace(/output$/, 'error')}` : 'Ask again in a moment.');
  return Buffer.from(await ws.artifacts.get(r.output));
}

const jsonOr = (text: string, other: unknown): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return other;
  }
};

export function registerArtifacts(program: Command): void {
  const cmd = program.command('artifacts').description("Files in the workspace's artifact store: upload inputs for asynchronous inference, download answers.");
  jsonCommand(cmd.command('upload <file>').description('Store a file (e.g. an image for kennel invoke --async or SageMaker InvokeEndpointAsync) and print its location, kennel://artifacts/SHA256.'), {
    jsonHelp: 'print JSON: {"location", "sha256", "bytes"}',
    action: ({ ws }: CommandContext<{ json?: boolean }>, file: string) => uploadArtifact(ws, file),
    human: (r) => r.location,
  });
  jsonCommand(
    cmd
      .command('download <location>')
      .description('Print (or with --out write) what a location names: kennel://artifacts/SHA256, or an asynchronous request\'s OutputLocation (its answer, JSON) or FailureLocation.')
      .option('--out <file>', 'write to FILE instead of printing'),
    {
      jsonHelp: 'print JSON (an answer as it is; with --out, {"out", "bytes"})',
      action: async ({ ws, opts }: CommandContext<{ out?: string; json?: boolean }>, location: string) => {
        const bytes = await download(ws, location);
        if (opts.out) {
          writeFileAtomic(resolve(opts.out), bytes);
          return { out: resolve(opts.out), bytes: bytes.length, text: undefined };
        }
        return { out: undefined, bytes: bytes.length, text: bytes.toString('utf8') };
      },
      json: (r) => (r.text !== undefined ? jsonOr(r.text, { bytes: r.bytes }) : { out: r.out, bytes: r.bytes }),
      human: (r) => (r.text !== undefined ? r.text.replace(/\n$/, '') : `wrote ${r.bytes} bytes to ${r.out}`),
    },
  );
}
