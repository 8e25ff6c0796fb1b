import type { Command } from 'commander';
import { cliActor, createAwsKey, createKey, listKeys, parseDuration, revokeKey, rotateKey, type CreateKeyOptions } from '../../security/index.js';
import { jsonCommand, table, type CommandContext } from '../output.js';
import { collect, number, oneOf } from '../options.js';


const SHOWN_ONCE = 'Store it now: it is shown only once (Kennel keeps only its hash).';
const SHOWN_ONCE_AWS = 'Store the secret now: it is shown only once (Kennel keeps it encrypted, to verify signatures). Point the client at Kennel with endpoint_url / endpoint, any region.';

/** The pair as ~/.aws/credentials lines, ready to paste. */
const awsKeyLines = (k: { accessKeyId: string; secretAccessKey: string }): string[] => [`  aws_access_key_id = ${k.accessKeyId}`, `  aws_secret_access_key = ${k.secretAccessKey}`];

export function registerKeys(program: Command): void {
  const cmd = program.command('keys').description('API keys: each belongs to a principal (a user or service account) whose policies say what it may do.');

  const createCmd = cmd
    .command('create <principal>')
    .description("Create an API key for PRINCIPAL (created if new), optionally with an inline policy: kennel keys create web --allow function:Invoke:function/classify --expires 90d")
    .option('--allow <grant>', 'ACTION:RESOURCE to allow, e.g. endpoint:Invoke:endpoint/dogs (repeatable)', collect, [])
    .option('--deny <grant>', 'ACTION:RESOURCE to deny; a deny always wins (repeatable)', collect, [])
    .option('--expires <duration>', 'lifetime, e.g. 30d, 12h (default: never; the security audit reports keys that never expire)')
    .option('--kind <kind>', 'principal kind when new: user or service', oneOf('--kind', ['user', 'service'] as const), 'user')
    .option('--rate-limit <perSecond>', 'requests per second for this key (default: the workspace default)', number('--rate-limit', { min: 0.001 }))
    .option('--burst <n>', 'requests this key may send at once (default: twice the rate)', number('--burst', { int: true, min: 1 }))
    .option('--aws', 'an AWS access key pair instead, for boto3 and the AWS SDKs (requests signed with SigV4)');
  jsonCommand(createCmd, {
    action: (ctx: CommandContext<{ allow: string[]; deny: string[]; expires?: string; kind: 'user' | 'service'; rateLimit?: number; burst?: number; aws?: boolean; json?: boolean }>, principal: string) => {
      const { opts } = ctx;
      const settings: CreateKeyOptions = { allow: opts.allow, deny: opts.deny, kind: opts.kind, expiresInMs: opts.expires === undefined ? undefined : parseDuration(opts.expires, '--expires'), ratePerSecond: opts.rateLimit, burst: opts.burst };
      // the workspace opens only once the options are valid
      return opts.aws ? { aws: createAwsKey(ctx.ws, principal, settings, cliActor()) } : { key: createKey(ctx.ws, principal, settings, cliActor()) };
    },
    json: (created) => created.aws ?? created.key,
    human: ({ aws, key }) => {
      const lifetime = (expiresAt?: string) => (expiresAt ? ` (expires ${expiresAt})` : ' (never expires)');
      if (aws) return [`AWS access key ${aws.accessKeyId} for ${aws.principal}${lifetime(aws.expiresAt)}:`, '', ...awsKeyLines(aws), '', SHOWN_ONCE_AWS].join('\n');
      return [`key ${key!.keyId} for ${key!.principal}${lifetime(key!.expiresAt)}:`, '', `  ${key!.key}`, '', SHOWN_ONCE].join('\n');
    },
  });

  jsonCommand(cmd.command('list').description('List keys (ids, principals, states, expiry and last use; never the secrets).').option('--principal <name>', 'only the keys of this principal'), {
    action: ({ ws, opts }: CommandContext<{ principal?: string; json?: boolean }>) => listKeys(ws, opts.principal),
    json: (keys) => ({ keys }),
    human: (keys) => {
      const day = (t?: string) => (t ? t.slice(0, 16).replace('T', ' ') : '-');
      return keys.length ? table(['KEY ID', 'TYPE', 'PRINCIPAL', 'STATE', 'CREATED', 'EXPIRES', 'LAST USED'], keys.map((k) => [k.keyId, k.type, k.principal, k.state, day(k.createdAt), day(k.expiresAt), day(k.lastUsedAt)])) : 'no keys yet: kennel keys create NAME --allow ACTION:RESOURCE';
    },
  });

  jsonCommand(cmd.command('revoke <keyId>').description('Revoke a key at once (also in a running daemon).'), {
    action: ({ ws }, keyId: string) => revokeKey(ws, keyId, cliActor()),
    human: (key) => `revoked key ${key.keyId} of ${key.principal}`,
  });

  jsonCommand(
    cmd
      .command('rotate <keyId>')
      .description('Replace a key: the new key works at once, the old one keeps working for the overlap window, then expires.')
      .option('--overlap <duration>', 'how long the old key stays valid', '24h')
      .option('--expires <duration>', "the new key's lifetime (default: the old key's)"),
    {
      action: ({ ws, opts }: CommandContext<{ overlap: string; expires?: string; json?: boolean }>, keyId: string) =>
        rotateKey(ws, keyId, { overlapMs: parseDuration(opts.overlap, '--overlap'), expiresInMs: opts.expires === undefined ? undefined : parseDuration(opts.expires, '--expires') }, cliActor()),
      human: (rotated) =>
        [
          `new ${rotated.key === undefined ? 'AWS access key' : 'key'} ${rotated.keyId} for ${rotated.principal}${rotated.expiresAt ? ` (expires ${rotated.expiresAt})` : ''}:`,
          '',
          ...(rotated.key === undefined ? awsKeyLines(rotated) : [`  ${rotated.key}`]),
          '',
          rotated.key === undefined ? SHOWN_ONCE_AWS : SHOWN_ONCE,
          `The old key ${rotated.oldKeyId} stops working at ${rotated.oldKeyExpiresAt}.`,
        ].join('\n'),
    },
  );
}
