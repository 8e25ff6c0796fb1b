/**
 * Hyperparameter tuning: search spaces, strategies (random, grid, TPE), early stopping (median,
 * ASHA), tuning jobs whose trials train heads on cached features as 'train-trial' tasks on the
 * worker engine, resumable from the database, and parameter importance.
 */
export { tune, resumeTune, showTune, listTunes, describeParams, formatValue, TuneOptionsSchema, type TuneOptions, type TuneResult, type TuneSummary, type TuneHooks } from './service.js';
export { parseParamFlag, parseSpaceJson, loadSpaceFile, makeSpace, type ParamSpec, type Params } from './space.js';
export { hyperparameterSpace, trainOptionsFor } from './hyperparameters.js';
export { createStrategy, minimize, gridSize, STRATEGIES, type Observation } from './strategy.js';
export { TpeSampler } from './tpe.js';
export { stoppingPlan, shouldStop, ashaRungs, EARLY_STOPPING, type FinishedCurve } from './stopping.js';
export { paramImportance } from './importance.js';
export { runTrial, OBJECTIVES, type TrialData } from './trial.js';
export { TUNING_TASKS } from './tasks.js';
export { TEST_OBJECTIVES, branin, tuningBowl, type TestObjective } from './objectives.js';
export { deleteTuneRecords } from './store.js';
