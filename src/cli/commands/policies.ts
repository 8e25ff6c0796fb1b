import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Errors, KennelError } from '../../core/index.js';
import { attachPolicy, cliActor, detachPolicy, getPrincipal, listKeys, listPolicies, listPrincipals, policyFromGrants, type AttachedPolicy } from '../../security/index.js';
import { jsonCommand, table, type CommandContext } from '../output.js';
import { collect } from '../options.js';

const grants = (p: AttachedPolicy) => p.document.statements.map((s) => `${s.effect} ${s.actions.join(',')} on ${s.resources.join(',')}`).join('; ');

function readPolicyFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw Errors.InvalidRequest(`Cannot read the policy file ${file}.`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw Errors.InvalidRequest(`The policy file ${file} is not valid JSON: ${(e as Error).message}.`);
  }
}

export function registerPolicies(program: Command): void {
  const cmd = program.command('policies').description('IAM-like policies: default deny, an explicit deny wins. Actions: endpoint:Invoke, function:Invoke, model:Read, admin:UpdateEndpoint ...; resources: endpoint/NAME, function/NAME, * ... Grant least privilege: admin:CreateKey/AttachPolicy on * is reported by security audit');

  const attachCmd = cmd
    .command('attach <principal>')
    .description("Attach a policy to PRINCIPAL (a user is created for a new name; 'anonymous' means callers without a key): --allow/--deny grants or --file policy.json")
    .option('--allow <grant>', 'ACTION:RESOURCE to allow (repeatable)', collect, [])
    .option('--deny <grant>', 'ACTION:RESOURCE to deny (repeatable)', collect, [])
    .option('--file <policy.json>', 'a policy document: {"statements": [{"effect", "actions", "resources"}]} (AWS IAM spelling works too)');
  jsonCommand(attachCmd, {
    action: (ctx: CommandContext<{ allow: string[]; deny: string[]; file?: string; json?: boolean }>, principal: string) => {
      const { opts } = ctx;
      if (Boolean(opts.file) === Boolean(opts.allow.length || opts.deny.length)) throw Errors.InvalidRequest('Give either --allow/--deny grants or --file.', "e.g. kennel policies attach alice --allow endpoint:Invoke:endpoint/dogs");
      const document = opts.file ? readPolicyFile(opts.file) : policyFromGrants(opts.allow, opts.deny);
      // the workspace opens only once the policy is read
      return { policy: attachPolicy(ctx.ws, principal, document, cliActor()), principal };
    },
    json: ({ policy }) => policy,
    human: ({ policy, principal }) => `attached ${policy.id} to ${principal}: ${grants(policy)}`,
  });

  jsonCommand(cmd.command('detach <principal> <policyId>').description('Remove a policy from a principal.'), {
    action: ({ ws }, principal: string, policyId: string) => ({ policy: detachPolicy(ws, principal, policyId, cliActor()), principal }),
    json: ({ policy }) => policy,
    human: ({ policy, principal }) => `detached ${policy.id} from ${principal}`,
  });

  jsonCommand(cmd.command('list').description('List every policy by principal.'), {
    action: ({ ws }) => ({ principals: listPrincipals(ws), policies: listPolicies(ws) }),
    json: ({ principals, policies }) => ({ principals: principals.map((p) => ({ ...p, policies: policies.filter((x) => x.principal === p.name) })) }),
    human: ({ principals, policies }) =>
      policies.length ? table(['PRINCIPAL', 'KIND', 'POLICY', 'GRANTS'], policies.map((p) => [p.principal, principals.find((x) => x.name === p.principal)?.kind ?? '-', p.id + (p.managedBy ? ' (managed)' : ''), grants(p)])) : 'no policies yet',
  });

  jsonCommand(cmd.command('show <principal>').description("Show a principal's policies and keys."), {
    action: ({ ws }, principal: string) => {
      const p = getPrincipal(ws, principal);
      if (!p) throw Errors.NotFound(`Principal ${principal} was not found.`, 'kennel policies list shows the principals.');
      return { ...p, policies: listPolicies(ws, principal), keys: listKeys(ws, principal) };
    },
    human: (shown) =>
      [
        `${shown.name} (${shown.kind})`,
        ...shown.policies.map((p) => `  ${p.id}${p.managedBy ? ` managed by ${p.managedBy}` : ''}: ${grants(p)}`),
        ...shown.keys.map((k) => `  key ${k.keyId}: ${k.state}${k.expiresAt ? `, expires ${k.expiresAt}` : ', never expires'}`),
      ].join('\n'),
  });
}
