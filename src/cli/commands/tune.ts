import type { Command } from 'commander';
import { CancelledError, Errors } from '../../core/index.js';
import { parseDatasetRef } from '../../data/index.js';
import { DEVICES, type Device } from '../../inference/index.js';
import type { Workspace } from '../../store/index.js';
import { EARLY_STOPPING, OBJECTIVES, STRATEGIES, describeParams, formatValue, listTunes, loadSpaceFile, parseParamFlag, resumeTune, showTune, tune, type ParamSpec, type TuneHooks, type TuneResult, type TuneSummary } from '../../tuning/index.js';
import { emit, pct, progressBars, runAction, table, withWorkspace } from '../output.js';
import { number, oneOf, queueOf } from '../options.js';

interface TuneFlags {
  dataset?: string;
  backbone?: string;
  space?: string;
  param?: string[];
  strategy: (typeof STRATEGIES)[number];
  maxTrials: number;
  maxParallel: number;
  objective: (typeof OBJECTIVES)[number];
  direction?: 'max' | 'min';
  earlyStopping: (typeof EARLY_STOPPING)[number];
  seed: number;
  register?: string;
  from?: string;
  optimizer: 'adamw' | 'sgd';
  patience: number;
  device: Device;
  queue?: string;
  json?: boolean;
}

const formatObjective = (name: string, v: number | null | undefined): string => (v === null || v === undefined ? '-' : name === 'valid.top1' ? pct(v) : v.toFixed(4));

/** The contract of `kennel tune` and `kennel tune resume` with --json, plus the rest of the result. */
function resultJson(r: TuneResult) {
  return {
    job: r.job,
    status: r.status,
    best: r.best && { id: r.best.id, params: r.best.params, objective: r.best.objective },
    model: r.model,
    objective: r.objective,
    counts: r.counts,
    importance: r.importance,
    seconds: r.seconds,
    timings: r.timings,
    features: r.features,
  };
}

function resultText(r: TuneResult): string {
  const n = r.trials.length;
  const parts = (['completed', 'stopped', 'failed'] as const).filter((s) => r.counts[s]).map((s) => `${r.counts[s]} ${s}`);
  return [
    `tuning job ${r.job}: ${n} trial${n === 1 ? '' : 's'} (${parts.join(', ') || 'none finished'}) in ${r.seconds.toFixed(1)}s (features ${r.timings.features.toFixed(1)}s, trials ${r.timings.trials.toFixed(1)}s)`,
    r.best ? `  best: trial ${r.best.id}, ${r.objective.name} ${formatObjective(r.objective.name, r.best.objective)} with ${describeParams(r.best.params)}` : '  no trial finished with an objective',
    r.importance.length ? `  importance: ${r.importance.map((i) => `${i.param} ${i.importance.toFixed(2)}`).join(', ')}` : '',
    r.model ? `  registered ${r.model}` : '',
    `next: kennel tune show ${r.job}${r.model ? `; kennel predict --model ${r.model} IMAGE...` : ''}`,
  ]
    .filter(Boolean)
    .join('\n');
}

function showText(s: TuneSummary): string {
  const names = [...new Set(s.trials.flatMap((t) => Object.keys(t.params)))];
  const rows = s.trials.map((t) => [t.id, t.status, formatObjective(s.objective.name, t.objective), t.epochs ?? '-', t.seconds === null ? '-' : t.seconds.toFixed(1), ...names.map((k) => (t.params[k] === undefined ? '-' : formatValue(t.params[k]!)))]);
  const lines = [
    `tuning job ${s.job} (${s.status}): ${s.dataset}@${s.datasetVersion} with ${s.backbone}; ${s.strategy} search, early stopping ${s.earlyStopping}, ${s.trials.length}/${s.maxTrials} trials, ${s.maxParallel} at a time, seed ${s.seed}${s.from ? `, warm start from ${s.from} (${s.warmStartTrials} trials)` : ''}`,
    `objective: ${s.objective.name} (${s.objective.direction})`,
    '',
    s.trials.length ? table(['TRIAL', 'STATUS', 'OBJECTIVE', 'EPOCHS RUN', 'SECONDS', ...names.map((n) => n.toUpperCase())], rows) : 'no trials yet',
    '',
    s.best ? `best: trial ${s.best.id} (${s.best.status}), ${s.objective.name} ${formatObjective(s.objective.name, s.best.objective)} with ${describeParams(s.best.params)}` : 'best: none yet',
  ];
  if (s.importance.length) {
    lines.push('', 'importance (share of objective variance explained by each parameter alone; rank correlation: + means higher values did better):');
    lines.push(table(['PARAM', 'IMPORTANCE', 'RANK CORR'], s.importance.map((i) => [i.param, i.importance.toFixed(3), i.correlation === undefined ? '-' : i.correlation.toFixed(2)])));
  }
  if (s.model) lines.push('', `registered: ${s.model}`);
  if (s.error) lines.push('', `last error: ${s.error}`, `resume with: kennel tune resume ${s.job}`);
  else if (s.status !== 'completed') lines.push('', `resume with: kennel tune resume ${s.job}`);
  return lines.join('\n');
}

/**
 * Runs a tuning session with progress bars. The job is named on stderr as soon as it exists, and
 * Ctrl-C says how to continue it: running the same command again would start a new job.
 */
function session(opts: { json?: boolean }, signal: AbortSignal, run: (ws: Workspace, hooks: TuneHooks) => Promise<TuneResult>): Promise<void> {
  return withWorkspace(async (ws) => {
    const bar = progressBars(opts);
    let job: string | undefined;
    const onJob = (id: string) => {
      job = id;
      if (!opts.json) process.stderr.write(`tuning job ${id}\n`);
    };
    try {
      const r = await run(ws, { progress: bar, signal, onJob });
      bar.end();
      emit(opts, resultJson(r), () => resultText(r));
    } catch (e) {
      if (!(e instanceof CancelledError) || !job) throw e;
      bar.end();
      process.stderr.write(`cancelled: tuning job ${job} keeps its finished trials; continue it with kennel tune resume ${job}\n`);
      process.exitCode = 130;
    } finally {
      bar.end();
    }
  });
}

export function registerTune(program: Command): void {
  // not a jsonCommand: a parent command with its own action and subcommands sharing its --json
  const cmd = program
    .command('tune')
    .description('Hyperparameter tuning: trials train heads on cached backbone features (random, grid or Bayesian/TPE search, median or ASHA early stopping), resumable; --register trains and registers the best configuration.')
    .option('--dataset <name[@version]>', 'dataset to tune on (required to start a job)')
    .option('--backbone <id>', 'installed backbone (required to start a job)')
    .option('--space <file>', 'search space JSON: {"lr": "loguniform:1e-4:1e-1", "batch_size": {"type": "choice", "values": [32, 64]}}')
    .option('--param <name=type:args>', 'a searched hyperparameter, repeatable: lr=loguniform:1e-4:1e-1, batch_size=choice:32,64,128, epochs=int:5:30, head=choice:linear,mlp (default: lr and batch_size)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--strategy <name>', 'random, grid or bayesian (TPE)', oneOf('--strategy', STRATEGIES), 'bayesian')
    .option('--max-trials <n>', 'trials to run', number('--max-trials', { int: true, min: 1, max: 10000 }), 20)
    .option('--max-parallel <p>', 'trials at a time (local worker processes, or tasks in flight with --queue)', number('--max-parallel', { int: true, min: 1, max: 1024 }), 1)
    .option('--objective <metric>', 'valid.top1 or valid.loss', oneOf('--objective', OBJECTIVES), 'valid.top1')
    .option('--direction <dir>', 'max or min (default: max for valid.top1, min for valid.loss)', oneOf('--direction', ['max', 'min'] as const))
    .option('--early-stopping <rule>', 'none, median or asha', oneOf('--early-stopping', EARLY_STOPPING), 'none')
    .option('--seed <n>', 'random seed (suggestions, training)', number('--seed', { int: true, min: 0 }), 0)
    .option('--register <model>', 'train the best configuration and register it under this model name')
    .option('--from <job>', 'warm start: seed the search with the trials of an earlier tuning job')
    .option('--optimizer <name>', 'adamw or sgd, for every trial', oneOf('--optimizer', ['adamw', 'sgd'] as const), 'adamw')
    .option('--patience <epochs>', 'early-stopping patience on valid loss inside each trial', number('--patience', { int: true, min: 1 }), 5)
    .option('--device <device>', 'feature extraction: cpu, webgpu, cuda or auto', oneOf('--device', DEVICES), 'cpu')
    .option('--queue <url>', 'Redis URL of kennel worker processes (default $KENNEL_QUEUE)')
    .option('--json', 'print JSON')
    .action((opts: TuneFlags) =>
      runAction(async (signal) => {
        if (!opts.dataset || !opts.backbone) throw Errors.InvalidRequest('kennel tune needs --dataset and --backbone.', 'e.g. kennel tune --dataset dogs --backbone mobilenetv2-12-int8 --max-trials 20');
        const space: ParamSpec[] = [...(opts.space ? loadSpaceFile(opts.space) : []), ...(opts.param ?? []).map(parseParamFlag)];
        const { name: dataset, version } = parseDatasetRef(opts.dataset);
        await session(opts, signal, (ws, hooks) =>
          tune(
            ws,
            { dataset, datasetVersion: version, backbone: opts.backbone!, space, strategy: opts.strategy, maxTrials: opts.maxTrials, maxParallel: opts.maxParallel, objective: opts.objective, direction: opts.direction, earlyStopping: opts.earlyStopping, seed: opts.seed, register: opts.register, from: opts.from, optimizer: opts.optimizer, patience: opts.patience, device: opts.device, queue: queueOf(opts.queue) },
            hooks,
          ),
        );
      }),
    );

  // tune list/show/resume: not jsonCommands: their --json may be given to the parent (optsWithGlobals)
  cmd
    .command('list')
    .description('List tuning jobs, oldest first.')
    .option('--json', 'print JSON')
    .action((_opts: unknown, sub: Command) =>
      runAction(async () => {
        const opts = sub.optsWithGlobals<{ json?: boolean }>();
        await withWorkspace(async (ws) => {
          const jobs = listTunes(ws);
          emit(
            opts,
            { jobs: jobs.map((j) => ({ job: j.job, status: j.status, dataset: `${j.dataset}@${j.datasetVersion}`, backbone: j.backbone, strategy: j.strategy, earlyStopping: j.earlyStopping, objective: j.objective, trials: j.trials.length, maxTrials: j.maxTrials, best: j.best && { id: j.best.id, objective: j.best.objective }, model: j.model, createdAt: j.createdAt })) },
            () =>
              jobs.length
                ? table(
                    ['JOB', 'STATUS', 'DATASET', 'STRATEGY', 'TRIALS', 'BEST', 'MODEL', 'CREATED'],
                    jobs.map((j) => [j.job, j.status, `${j.dataset}@${j.datasetVersion}`, j.strategy, `${j.trials.filter((t) => ['completed', 'stopped', 'failed'].includes(t.status)).length}/${j.maxTrials}`, formatObjective(j.objective.name, j.best?.objective), j.model ?? '-', j.createdAt.slice(0, 19).replace('T', ' ')]),
                  )
                : 'no tuning jobs yet: kennel tune --dataset NAME --backbone ID',
          );
        });
      }),
    );

  cmd
    .command('show <job>')
    .description('Show a tuning job: every trial (params, objective, epochs run, status, seconds), the best trial and the importance of each hyperparameter.')
    .option('--json', 'print JSON')
    .action((job: string, _opts: unknown, sub: Command) =>
      runAction(async () => {
        const opts = sub.optsWithGlobals<{ json?: boolean }>();
        await withWorkspace(async (ws) => {
          const s = showTune(ws, job);
          emit(opts, s, () => showText(s));
        });
      }),
    );

  cmd
    .command('resume <job>')
    .description('Continue a tuning job that was killed or cancelled: finished trials are kept, interrupted ones run again.')
    .option('--queue <url>', 'run the remaining trials on the kennel worker processes of this Redis queue')
    .option('--json', 'print JSON')
    .action((job: string, _opts: unknown, sub: Command) =>
      runAction(async (signal) => {
        const opts = sub.optsWithGlobals<{ json?: boolean; queue?: string }>();
        await session(opts, signal, (ws, hooks) => resumeTune(ws, job, { queue: opts.queue }, hooks));
      }),
    );
}
