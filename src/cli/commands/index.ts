import type { Command } from 'commander';

type Register = (program: Command) => void;

/**
 * Each area contributes one module (in this folder) that adds its subcommands to the program,
 * under the top-level names listed here. A command loads only the modules of its own name:
 * loading every area (the server, the security and serving stacks) took most of a command's
 * start, 0.4-0.7 s on a GPU host.
 */
const COMMAND_MODULES: ReadonlyArray<{ names: readonly string[]; load: () => Promise<Register> }> = [
  { names: ['data', 'datasets'], load: async () => (await import('./data.js')).registerData },
  { names: ['backbones'], load: async () => (await import('./backbones.js')).registerBackbones },
  { names: ['train'], load: async () => (await import('./train.js')).registerTrain },
  { names: ['tune'], load: async () => (await import('./tune.js')).registerTune },
  { names: ['gc', 'jobs'], load: async () => (await import('./housekeeping.js')).registerHousekeeping },
  { names: ['models'], load: async () => (await import('./models.js')).registerModels },
  { names: ['models'], load: async () => (await import('./models-import.js')).registerModelsImport },
  { names: ['predict'], load: async () => (await import('./predict.js')).registerPredict },
  { names: ['transform'], load: async () => (await import('./transform.js')).registerTransform },
  { names: ['rules', 'report'], load: async () => (await import('./insights.js')).registerInsights },
  { names: ['cost'], load: async () => (await import('./cost.js')).registerCost },
  { names: ['up', 'down'], load: async () => (await import('./daemon.js')).registerDaemon },
  { names: ['endpoints'], load: async () => (await import('./endpoints.js')).registerEndpoints },
  { names: ['invoke'], load: async () => (await import('./invoke.js')).registerInvoke },
  { names: ['artifacts'], load: async () => (await import('./artifacts.js')).registerArtifacts },
  { names: ['worker', 'workers'], load: async () => (await import('./workers.js')).registerWorkers },
  { names: ['functions'], load: async () => (await import('./functions.js')).registerFunctions },
  { names: ['keys'], load: async () => (await import('./keys.js')).registerKeys },
  { names: ['policies'], load: async () => (await import('./policies.js')).registerPolicies },
  { names: ['security'], load: async () => (await import('./security.js')).registerSecurity },
];

/**
 * Adds the commands to the program: those named `command` where a module adds it, else every
 * command (help, an unknown name, none given), in the order help lists them.
 */
export async function registerCommands(program: Command, command?: string): Promise<void> {
  const named = COMMAND_MODULES.filter((m) => command !== undefined && m.names.includes(command));
  const registers = await Promise.all((named.length ? named : COMMAND_MODULES).map((m) => m.load()));
  for (const register of registers) register(program);
}
