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

registerCommands(program);
await program.parseAsync(process.argv);
