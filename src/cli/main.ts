import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command()
  .name('kennel')
  .description('Kennel: from a folder of dog photos to a trained classifier and a prediction API.\nWorkspace: $KENNEL_HOME (default ./.kennel).')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'error: ')) })
  .configureHelp({ showGlobalOptions: true })
  // global: they may come before or after the subcommand, and reach every command (and the local
  // worker processes and daemon it starts) through the environment, like KENNEL_HOME
  .option('--artifacts <url>', 'artifact store: s3://BUCKET/PREFIX in an S3-compatible object store (default $KENNEL_ARTIFACTS, else the workspace folder)')
  .option('--artifacts-endpoint <url>', 'the S3 API for --artifacts, e.g. http://HOST:9000 (default $AWS_ENDPOINT_URL; region and credentials from the standard AWS variables and files)')
  .hook('preAction', () => {
    const o = program.opts<{ artifacts?: string; artifactsEndpoint?: string }>();
    if (o.artifacts) process.env.KENNEL_ARTIFACTS = o.artifacts;
    if (o.artifactsEndpoint) process.env.KENNEL_ARTIFACTS_ENDPOINT = o.artifactsEndpoint;
  });

/** The command the arguments name: the first that is neither an option nor a global option's value. */
function commandName(args: string[]): string | undefined {
  const valued = program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short]);
  for (let i = 0; i < args.length; i++) {
    if (valued.includes(args[i])) i++;
    else if (!args[i]!.startsWith('-')) return args[i];
  }
  return undefined;
}

await registerCommands(program, commandName(process.argv.slice(2)));
await program.parseAsync(process.argv);
