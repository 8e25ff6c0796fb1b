import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { Errors, KennelError, notFound } from '../../core/index.js';
import { createFunction, deleteFunction, eventCounts, findFunction, listFailedEvents, listFunctions, purgeEvents, replayEvents, updateFunction, type FunctionDefinition, type FunctionSettings } from '../../functions/index.js';
import { cliActor, parseDuration } from '../../security/index.js';
import { dataPlaneUrl, findDaemon } from '../../server/index.js';
import { defaultHome } from '../../store/index.js';
import { number } from '../options.js';
import { emit, jsonCommand, runAction, table, withWorkspace, type CommandContext } from '../output.js';

function memory(value: string): number {
  const m = /^(\d+)\s*(mb|gb)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`--memory must be a size like 256MB or 1GB, not "${value}".`);
  return Number(m[1]) * (m[2]?.toLowerCase() === 'gb' ? 1024 : 1);
}

// 'none' stays a string here: commander turns a parser's null into ''
const concurrency = (name: string, allowNone: boolean) => (value: string): number | 'none' => {
  if (allowNone && value === 'none') return value;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number${allowNone ? ' or none' : ''}, not "${value}".`);
  return n;
};

interface SettingsOptions {
  endpoint?: string;
  handler?: string;
  reservedConcurrency?: number | 'none';
  provisionedConcurrency?: number | 'none';
  timeout?: string;
  memory?: number;
  route?: string;
  maxEventAge?: string;
  maxRetries?: number;
  json?: boolean;
}

function settingsFrom(opts: SettingsOptions): FunctionSettings {
  return {
    endpoint: opts.endpoint,
    handler: opts.handler,
    reservedConcurrency: opts.reservedConcurrency === 'none' ? null : opts.reservedConcurrency,
    provisionedConcurrency: opts.provisionedConcurrency === 'none' ? undefined : opts.provisionedConcurrency,
    timeoutMs: opts.timeout === undefined ? undefined : parseDuration(opts.timeout, '--timeout'),
    memoryMb: opts.memory,
    route: opts.route === 'none' ? null : opts.route,
    maxEventAgeSeconds: opts.maxEventAge === undefined ? undefined : parseDuration(opts.maxEventAge, '--max-event-age') / 1000,
    maxRetries: opts.maxRetries,
  };
}

function withSettingsOptions(c: Command, update: boolean): Command {
  return c
    .option('--handler <file>', 'a .ts/.js module exporting handler(event, context), bundled now (default: the built-in classify handler)')
    .option('--reserved-concurrency <n>', `the most concurrent executions; more get 429${update ? ' (none removes it)' : ''}`, concurrency('--reserved-concurrency', update))
    .option('--provisioned-concurrency <n>', 'instances kept started and warm', concurrency('--provisioned-concurrency', false))
    .option('--timeout <duration>', 'time limit per invocation, e.g. 10s')
    .option('--memory <size>', 'memory limit of a handler instance, e.g. 256MB', memory)
    .option('--route <path>', `an HTTP API route on the data plane, e.g. /v1/classify${update ? ' (none removes it)' : ''}`)
    .option('--max-event-age <duration>', 'asynchronous (Event) invocations not run within this go to the failure list, 1s to 6h (Lambda MaximumEventAgeInSeconds; default 6h)')
    .option('--max-retries <n>', 'retries of a failed asynchronous invocation, 0 to 2 (Lambda MaximumRetryAttempts; default 2)', number('--max-retries', { int: true, min: 0, max: 2 }));
}

const describeFn = (f: FunctionDefinition) => ({ ...f, handler: f.handler === 'module' ? `module ${f.handlerSource} (${f.handlerSha?.slice(0, 12)})` : f.handler });

export function registerFunctions(program: Command): void {
  const cmd = program.command('functions').description('Functions in front of endpoints (like Lambda): least-privilege execution roles, reserved and provisioned concurrency.');

  const warned = async <T extends { warnings: string[] }>(p: Promise<T>): Promise<T> => {
    const r = await p;
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    return r;
  };

  jsonCommand(
    withSettingsOptions(
      cmd
        .command('create <name>')
        .description('Create a function; its execution role may invoke only --endpoint, which must exist.')
        .requiredOption('--endpoint <name>', 'the endpoint it calls')
        .option('--allow-missing-endpoint', 'create it before its endpoint (invocations fail with 404 until the endpoint exists)'),
      false,
    ),
    {
      action: ({ ws, opts }: CommandContext<SettingsOptions & { endpoint: string; allowMissingEndpoint?: boolean }>, name: string) =>
        warned(createFunction(ws, name, { ...settingsFrom(opts), endpoint: opts.endpoint, requireEndpoint: !opts.allowMissingEndpoint }, cliActor())),
      json: ({ fn, warnings }) => ({ ...fn, warnings }),
      human: ({ fn }) => `created function ${fn.name} -> endpoint ${fn.endpoint} (role ${fn.role}: endpoint:Invoke on endpoint/${fn.endpoint} only)`,
    },
  );

  jsonCommand(
    withSettingsOptions(cmd.command('update <name>').description('Change a function; --endpoint or --reset-role gives the role least privilege again.').option('--endpoint <name>', 'a new endpoint').option('--reset-role', 'replace every policy of the execution role with endpoint:Invoke on its endpoint'), true),
    {
      action: ({ ws, opts }: CommandContext<SettingsOptions & { resetRole?: boolean }>, name: string) => warned(updateFunction(ws, name, { ...settingsFrom(opts), resetRole: opts.resetRole }, cliActor())),
      json: ({ fn, warnings }) => ({ ...fn, warnings }),
      human: ({ fn }) => `updated function ${fn.name} (revision ${fn.revision})`,
    },
  );

  jsonCommand(cmd.command('list').description('List functions.'), {
    action: ({ ws }) => listFunctions(ws),
    json: (fns) => ({ functions: fns }),
    human: (fns) =>
      fns.length
        ? table(
            ['NAME', 'ENDPOINT', 'HANDLER', 'RESERVED', 'PROVISIONED', 'TIMEOUT', 'MEMORY', 'ROUTE'],
            fns.map((f) => [f.name, f.endpoint, describeFn(f).handler, f.reservedConcurrency ?? '-', f.provisionedConcurrency, `${f.timeoutMs / 1000}s`, `${f.memoryMb}MB`, f.route ?? '-']),
          )
        : 'no functions yet: kennel functions create NAME --endpoint ENDPOINT',
  });

  jsonCommand(cmd.command('delete <name>').description('Delete a function and its execution role.'), {
    action: ({ ws }, name: string) => deleteFunction(ws, name, cliActor()),
    json: (fn) => ({ deleted: fn.name }),
    human: (fn) => `deleted function ${fn.name}`,
  });

  // not a jsonCommand yet: three outputs (list, --replay, --purge); a later pass can return a tagged result
  cmd
    .command('events <name>')
    .description('List the failed asynchronous (Event) invocations of a function, the failure destination of its queue; --replay or --purge them.')
    .option('--replay [id...]', 'queue failed events again (these ids, or all): attempts and age start over')
    .option('--purge [id...]', 'delete failed events (these ids, or all)')
    .option('--json', 'print JSON')
    .action((name: string, opts: { replay?: true | string[]; purge?: true | string[]; json?: boolean }) =>
      runAction(async () => {
        if (opts.replay && opts.purge) throw Errors.InvalidRequest('Give --replay or --purge, not both.');
        const idsOf = (v: true | string[]) => (v === true ? undefined : v);
        await withWorkspace((ws) => {
          const counts = eventCounts(ws, name);
          // failed events outlive a deleted function, so they can still be listed and purged
          if (!findFunction(ws, name) && counts.queued + counts.running + counts.failed === 0) throw notFound(`Function ${name}`, 'kennel functions list shows the functions.');
          if (opts.replay) {
            const replayed = replayEvents(ws, name, idsOf(opts.replay));
            emit(opts, { function: name, replayed }, () => `queued ${replayed} failed event${replayed === 1 ? '' : 's'} of ${name} again; a running daemon runs them within a second`);
          } else if (opts.purge) {
            const purged = purgeEvents(ws, name, idsOf(opts.purge));
            emit(opts, { function: name, purged }, () => `deleted ${purged} failed event${purged === 1 ? '' : 's'} of ${name}`);
          } else {
            const events = listFailedEvents(ws, name);
            emit(opts, { function: name, queued: counts.queued, running: counts.running, failed: events.length, events }, () =>
              [
                `${name}: ${counts.queued} queued, ${counts.running} running, ${events.length} failed`,
                ...(events.length
                  ? [
                      table(['ID', 'REQUEST ID', 'RECEIVED', 'FAILED', 'ATTEMPTS', 'BYTES', 'LAST ERROR'], events.map((e) => [e.id, e.requestId, e.receivedAt, e.failedAt, e.attempts, e.bytes, e.lastError.slice(0, 120)])),
                      `replay: kennel functions events ${name} --replay [ID...]   delete: kennel functions events ${name} --purge [ID...]`,
                    ]
                  : []),
              ].join('\n'),
            );
          }
        });
      }),
    );

  // not a jsonCommand: no workspace, and its error lines are being moved to the error catalogue in parallel
  cmd
    .command('invoke <name>')
    .description("Invoke a function through the daemon's public route (POST /functions/NAME/invoke).")
    .option('--event <json>', 'the event, e.g. \'{"url": "https://example.com/dog.jpg"}\'')
    .option('--event-file <file>', 'read the event from a JSON file')
    .option('--image <file>', 'send this image file as {"image": "<base64>"}')
    .option('--url <url>', 'send {"url": URL}')
    .option('--key <key>', 'API key (default: $KENNEL_API_KEY)')
    .option('--gateway <url>', 'the data-plane base URL (default: the running daemon of KENNEL_HOME)')
    .option('--json', 'print JSON')
    .action((name: string, opts: { event?: string; eventFile?: string; image?: string; url?: string; key?: string; gateway?: string; json?: boolean }) =>
      runAction(async () => {
        const event = eventFrom(opts);
        const key = opts.key ?? process.env.KENNEL_API_KEY;
        const base = (opts.gateway ?? dataPlaneUrl(findDaemon(defaultHome()))).replace(/\/$/, '');
        let res: Response;
        try {
          res = await fetch(`${base}/functions/${encodeURIComponent(name)}/invoke`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
            body: JSON.stringify(event),
          });
        } catch (e) {
          throw Errors.InvalidRequest(`Cannot reach the Kennel daemon at ${base} (${(e as Error & { cause?: { code?: string } }).cause?.code ?? (e as Error).message}).`, 'Start it with kennel up, or pass --gateway URL.');
        }
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: shown as text */
        }
        if (res.status >= 400) {
          const err = (body as { error?: { message?: string; hint?: string } })?.error;
          throw Errors.InvalidRequest(`${name} answered ${res.status}: ${err?.message ?? text.slice(0, 300)}`, err?.hint);
        }
        emit(opts, { statusCode: res.status, headers: Object.fromEntries(res.headers), body }, () => (typeof body === 'string' ? body : JSON.stringify(body, null, 2)));
      }),
    );
}

function eventFrom(opts: { event?: string; eventFile?: string; image?: string; url?: string }): unknown {
  const given = [opts.event, opts.eventFile, opts.image, opts.url].filter((x) => x !== undefined).length;
  if (given !== 1) throw Errors.InvalidRequest('Give exactly one of --event, --event-file, --image or --url.');
  if (opts.url !== undefined) return { url: opts.url };
  if (opts.image !== undefined) {
    try {
      return { image: readFileSync(opts.image).toString('base64') };
    } catch {
      throw Errors.InvalidRequest(`Cannot read ${opts.image}.`);
    }
  }
  let text = opts.event;
  if (opts.eventFile !== undefined) {
    try {
      text = readFileSync(opts.eventFile, 'utf8');
    } catch {
      throw Errors.InvalidRequest(`Cannot read ${opts.eventFile}.`);
    }
  }
  try {
    return JSON.parse(text!);
  } catch (e) {
    throw Errors.InvalidRequest(`The event is not valid JSON: ${(e as Error).message}.`);
  }
}
