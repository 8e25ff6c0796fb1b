import type { Command } from 'commander';

/** Each area contributes one module (in this folder) that adds its subcommands to the program. */
export function registerCommands(program: Command): void {
  void program;
}
