import type { Command } from 'commander';
import { AUDIT_FAILURE_POLICIES, cliActor, getSettings, readAudit, runSecurityAudit, setAuditFailure, setCors, setRateLimit, type AuditFailurePolicy, type Plane } from '../../security/index.js';
import { jsonCommand, table, type CommandContext } from '../output.js';
import { collect, number, oneOf } from '../options.js';

export function registerSecurity(program: Command): void {
  const cmd = program.command('security').description('Security audit, CORS, rate-limit and audit-failure settings, and the audit log.');

  jsonCommand(
    cmd
      .command('audit')
      .description('Find over-broad policies and roles, unauthenticated access, admin keys on the data plane, keys that never expire or sit unused, and CORS *; each with a fix. Exits 1 when a high-severity finding exists.'),
    {
      action: ({ ws }) => {
        const report = runSecurityAudit(ws);
        if (report.findings.some((f) => f.severity === 'high')) process.exitCode = 1;
        return report;
      },
      human: (report) =>
        report.findings.length
          ? report.findings.map((f) => `${f.severity.toUpperCase().padEnd(6)} ${f.rule}  ${f.resource}\n       ${f.message}\n       fix: ${f.fix}`).join('\n')
          : 'no findings',
    },
  );

  jsonCommand(
    cmd
      .command('cors')
      .description('Show or set CORS for the data plane. Off by default; when on, only the listed origins are answered (never * with credentials).')
      .option('--allow-origin <origin>', 'an origin such as https://app.example.com (repeatable; * allows any origin, which the audit reports)', collect, [])
      .option('--credentials', 'let browsers send credentials (not with *)')
      .option('--off', 'turn CORS off'),
    {
      action: ({ ws, opts }: CommandContext<{ allowOrigin: string[]; credentials?: boolean; off?: boolean; json?: boolean }>) =>
        opts.off || opts.allowOrigin.length ? setCors(ws, { origins: opts.off ? [] : opts.allowOrigin, credentials: Boolean(opts.credentials) }, cliActor()) : getSettings(ws).cors,
      human: (cors) => (cors.origins.length ? `CORS on for ${cors.origins.join(', ')}${cors.credentials ? ' (with credentials)' : ''}` : 'CORS off'),
    },
  );

  jsonCommand(
    cmd
      .command('rate-limit')
      .description('Show or set the per-key rate limit used by keys without their own (token bucket).')
      .option('--per-second <n>', 'requests per second', number('--per-second', { min: 0.001 }))
      .option('--burst <n>', 'requests at once', number('--burst', { int: true, min: 1 })),
    {
      action: ({ ws, opts }: CommandContext<{ perSecond?: number; burst?: number; json?: boolean }>) => {
        const current = getSettings(ws).rateLimit;
        if (opts.perSecond === undefined && opts.burst === undefined) return current;
        return setRateLimit(ws, { perSecond: opts.perSecond ?? current.perSecond, burst: opts.burst ?? current.burst }, cliActor());
      },
      human: (limit) => `${limit.perSecond} requests/s per key, bursts of ${limit.burst}`,
    },
  );

  jsonCommand(
    cmd
      .command('audit-failure')
      .description('Show or set what the data plane does when a request\'s audit entry cannot be written (disk full): fail-closed answers 503 (the default), count serves it and counts it in kennel_audit_write_failures_total with an error log line. Admin changes always fail closed.')
      .option('--data-plane <policy>', AUDIT_FAILURE_POLICIES.join(' or '), oneOf('--data-plane', AUDIT_FAILURE_POLICIES)),
    {
      action: ({ ws, opts }: CommandContext<{ dataPlane?: AuditFailurePolicy; json?: boolean }>) => (opts.dataPlane === undefined ? getSettings(ws).auditFailure : setAuditFailure(ws, { dataPlane: opts.dataPlane }, cliActor())),
      human: (policy) => `data plane: ${policy.dataPlane}${policy.dataPlane === 'fail-closed' ? ' (a request whose audit entry cannot be written is answered 503)' : ' (served, counted in kennel_audit_write_failures_total and logged)'}; admin changes: fail-closed`,
    },
  );

  jsonCommand(
    cmd
      .command('log')
      .description('Show the audit log, newest first: admin changes and invocations with who, what, status and latency.')
      .option('--principal <name>', 'only this principal')
      .option('--plane <plane>', 'cli, admin, data or function', oneOf('--plane', ['cli', 'admin', 'data', 'function'] as const))
      .option('--limit <n>', 'entries', number('--limit', { int: true, min: 1, max: 100_000 }), 50),
    {
      action: ({ ws, opts }: CommandContext<{ principal?: string; plane?: Plane; limit: number; json?: boolean }>) => readAudit(ws, { principal: opts.principal, plane: opts.plane, limit: opts.limit }),
      json: (entries) => ({ entries }),
      human: (entries) =>
        entries.length
          ? table(
              ['TIME', 'PLANE', 'PRINCIPAL', 'ACTION', 'RESOURCE', 'STATUS', 'MS'],
              entries.map((e) => [e.ts.slice(0, 19).replace('T', ' '), e.plane, e.principal ?? (e.keyId ? `key ${e.keyId}` : '-'), e.action, e.resource, e.status, e.latencyMs === undefined ? '-' : e.latencyMs.toFixed(1)]),
            )
          : 'the audit log is empty',
    },
  );
}
