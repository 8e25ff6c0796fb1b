import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerCommands } from '../../src/cli/commands/index.js';

/** Every subcommand's help under `cmd`, keyed by its path. */
function helps(cmd: Command, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const sub of cmd.commands) {
    const path = `${prefix}${sub.name()}`;
    out.set(path, sub.helpInformation());
    for (const [k, v] of helps(sub, `${path} `)) out.set(k, v);
  }
  return out;
}

test('a command loads only its own modules and gets the same subcommands, options and help as with every module loaded', async () => {
  const all = new Command();
  await registerCommands(all);
  const names = all.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  assert.ok(names.length >= 20, `top-level commands: ${names.join(', ')}`);
  const full = helps(all);
  for (const name of names) {
    const only = new Command();
    await registerCommands(only, name);
    const top = only.commands.find((c) => c.name() === name || c.aliases().includes(name));
    assert.ok(top, `kennel ${name} is registered when it is the command run`);
    for (const [path, help] of helps(only)) if (path.split(' ')[0] === top.name()) assert.equal(help, full.get(path), `kennel ${path}`);
    const expected = [...full.keys()].filter((p) => p.split(' ')[0] === top.name());
    assert.deepEqual([...helps(only).keys()].filter((p) => p.split(' ')[0] === top.name()), expected, `kennel ${name}'s subcommands`);
    assert.ok(only.commands.length < all.commands.length, `kennel ${name} does not load every command`);
  }
  // an unknown name loads everything, so that commander can say what was meant
  const unknown = new Command();
  await registerCommands(unknown, 'trian');
  assert.equal(unknown.commands.length, all.commands.length);
});
