/**
 * Hyperparameter tuning: search spaces, strategies (random, grid, TPE), early stopping (median,
 * ASHA), tuning jobs whose trials train heads on cached features as 'train-trial' tasks on the
 * worker engine, resumable from the database, and parameter importance.
 */
export { tune, resumeTune, showTune, listTunes, describeParams, formatValue, TuneOptionsSchema, type TuneOptions, type TuneResult, type TuneSummary, type TrialSummary, type TuneHooks } from './service.js';
export { parseParamFlag, parseParamText, parseSpaceJson, loadSpaceFile, makeSpace, describeParam, type ParamSpec, type Params, type ParamValue, type SearchSpace } from './space.js';
export { hyperparameterSpace, trainOptionsFor, HYPERPARAMETERS, DEFAULT_SPACE } from './hyperparameters.js';
export { createStrategy, minimize, gridSize, STRATEGIES, type Strategy, type StrategyName, type StrategyOptions, type Observation, type Direction } from './strategy.js';
export { TpeSampler, DEFAULT_TPE, type TpeOptions } from './tpe.js';
export { stoppingPlan, shouldStop, ashaRungs, ASHA, MEDIAN, EARLY_STOPPING, type EarlyStopping, type StoppingPlan, type FinishedCurve } from './stopping.js';
export { paramImportance, MIN_TRIALS_FOR_IMPORTANCE, type ParamImportance } from './importance.js';
export { runTrial, encodeTrialData, decodeTrialData, OBJECTIVES, type Objective, type TrialData, type TrialOutcome, type TrialSpec } from './trial.js';
export { TUNING_TASKS, tasks as tuningTasks } from './tasks.js';
export { TEST_OBJECTIVES, branin, tuningBowl, hartmann6, type TestObjective } from './objectives.js';
export { deleteTuneRecords, type TrialStatus } from './store.js';
