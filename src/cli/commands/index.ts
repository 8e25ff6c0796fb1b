import type { Command } from 'commander';
import { registerArtifacts } from './artifacts.js';
import { registerBackbones } from './backbones.js';
import { registerCost } from './cost.js';
import { registerDaemon } from './daemon.js';
import { registerData } from './data.js';
import { registerEndpoints } from './endpoints.js';
import { registerFunctions } from './functions.js';
import { registerHousekeeping } from './housekeeping.js';
import { registerInvoke } from './invoke.js';
import { registerInsights } from './insights.js';
import { registerKeys } from './keys.js';
import { registerModels } from './models.js';
import { registerModelsImport } from './models-import.js';
import { registerPolicies } from './policies.js';
import { registerPredict } from './predict.js';
import { registerSecurity } from './security.js';
import { registerTrain } from './train.js';
import { registerTransform } from './transform.js';
import { registerTune } from './tune.js';
import { registerWorkers } from './workers.js';

/** Each area contributes one module (in this folder) that adds its subcommands to the program. */
export function registerCommands(program: Command): void {
  registerData(program);
  registerBackbones(program);
  registerTrain(program);
  registerTune(program);
  registerHousekeeping(program);
  registerModels(program);
  registerModelsImport(program);
  registerPredict(program);
  registerTransform(program);
  registerInsights(program);
  registerCost(program);
  registerDaemon(program);
  registerEndpoints(program);
  registerInvoke(program);
  registerArtifacts(program);
  registerWorkers(program);
  registerFunctions(program);
  registerKeys(program);
  registerPolicies(program);
  registerSecurity(program);
}
