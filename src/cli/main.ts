import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command()
  .name('kennel')
  .description('Kennel: from a folder of dog photos to a trained classifier and a prediction API.\nWorkspace: $KENNEL_HOME (default ./.kennel).')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'error: ')) });

registerCommands(program);
await program.parseAsync(process.argv);
