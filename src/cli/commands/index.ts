import type { Command } from 'commander';
import { registerBackbones } from './backbones.js';
import { registerData } from './data.js';
import { registerModels } from './models.js';
import { registerPredict } from './predict.js';
import { registerTrain } from './train.js';

/** Each area contributes one module (in this folder) that adds its subcommands to the program. */
export function registerCommands(program: Command): void {
  registerData(program);
  registerBackbones(program);
  registerTrain(program);
  registerModels(program);
  registerPredict(program);
}
