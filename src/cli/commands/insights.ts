import { resolve } from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../../core/index.js';
import { buildReport, renderReport, rulesForJob, type RuleResult } from '../../insights/index.js';
import { jsonCommand, table, type CommandContext } from '../output.js';
import { number } from '../options.js';

const STATUS: Record<RuleResult['status'], string> = { fired: 'FIRED', ok: 'ok', skipped: 'skipped' };

function rulesText(job: string, rules: RuleResult[]): string {
  const fired = rules.filter((r) => r.status === 'fired');
  const lines = [
    `rules for job ${job}: ${fired.length} of ${rules.length} fired`,
    table(
      ['STATUS', 'RULE', 'FINDING'],
      rules.map((r) => [r.status === 'fired' ? `${STATUS[r.status]} (${r.severity})` : STATUS[r.status], r.rule, r.finding]),
    ),
  ];
  for (const r of fired) lines.push('', `${r.rule}: ${r.recommendation}`, `  evidence: ${Object.entries(r.evidence).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : v}`).join(' ')}`);
  return lines.join('\n');
}

/** One line per fired rule, for the end of kennel train's human output. */
export function firedRuleLines(job: string, r: { rules?: RuleResult[]; rulesError?: string }): string[] {
  if (r.rulesError) return [`  rules not run: ${r.rulesError}`];
  const fired = (r.rules ?? []).filter((x) => x.status === 'fired');
  return fired.length ? [...fired.map((x) => `  rule ${x.rule} fired (${x.severity}): ${x.finding}`), `  what to do: kennel rules ${job}`] : [];
}

export function registerInsights(program: Command): void {
  jsonCommand(
    program
      .command('rules <job>')
      .description('Re-run the profiler and debugger rules on a finished training job (JOB is the id kennel train prints or kennel jobs list shows, or "latest": the newest completed training job).')
      .option('--config <file>', 'rules settings as JSON, e.g. {"Overfit": {"epochs": 4}} (default: $KENNEL_HOME/rules.json when present)'),
    {
      action: ({ ws, opts }: CommandContext<{ config?: string; json?: boolean }>, jobRef: string) => rulesForJob(ws, jobRef, opts.config && resolve(opts.config)),
      human: (r) => rulesText(r.job, r.rules),
    },
  );

  jsonCommand(
    program
      .command('report <job>')
      .description('Write a self-contained HTML report of a training or tuning job (JOB: its id, or "latest": the newest completed training job): step timeline, throughput, curves, confusion matrix, worst classes with misclassified images, rules and hardware use.')
      .option('--out <file>', 'HTML file to write (default: kennel-report-JOB.html)')
      .option('--examples <n>', 'misclassified test images per class (0 = none)', number('--examples', { int: true, min: 0, max: 50 }), 4)
      .option('--example-classes <n>', 'worst classes to show examples for', number('--example-classes', { int: true, min: 1, max: 1000 }), 8)
      .option('--config <file>', 'rules settings as JSON (default: $KENNEL_HOME/rules.json when present)'),
    {
      action: async ({ bar, ws, opts }: CommandContext<{ out?: string; examples: number; exampleClasses: number; config?: string; json?: boolean }>, jobRef: string) => {
        const data = await buildReport(ws, jobRef, { rulesConfig: opts.config && resolve(opts.config), examplesPerClass: opts.examples, exampleClasses: opts.exampleClasses, progress: bar });
        bar.end();
        const html = renderReport(data);
        const out = resolve(opts.out ?? `kennel-report-${data.job.id}.html`);
        writeFileAtomic(out, html);
        const charts = [...html.matchAll(/data-chart="([^"]+)"/g)].map((m) => m[1]!);
        const fired = data.rules.filter((r) => r.status === 'fired').map((r) => r.rule);
        return { job: data.job.id, out, bytes: Buffer.byteLength(html), charts, rulesFired: fired, examples: data.examples.reduce((n, c) => n + c.items.length, 0), notes: data.notes };
      },
      human: (r) => [`wrote ${r.out} for job ${r.job} (${(r.bytes / 1024).toFixed(0)} KiB, ${r.charts.length} charts${r.rulesFired.length ? `; rules fired: ${r.rulesFired.join(', ')}` : ''})`, ...r.notes.map((n) => `note: ${n}`)].join('\n'),
    },
  );
}
