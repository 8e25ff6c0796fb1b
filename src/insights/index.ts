/**
 * Insights: job telemetry, profiler/debugger rules, the HTML job report and the cost model.
 * Training records telemetry through TelemetryRecorder and calls saveJobInsights at the end.
 */
export { TelemetryRecorder, STEP_PHASES, type JobTelemetry, type StepRecord, type StepPhases, type PhaseRecord, type EpochRecord, type HardwareSample, type GpuSample, type HostInfo, type ExtractBatch, type HeadStep, type RecorderOptions } from './telemetry.js';
export { nvidiaSmi, parseGpuSamples, parseGpuInventory, type GpuProbe } from './gpu.js';
export { runRules, parseRulesConfig, RULE_NAMES, RulesConfigSchema, type RuleResult, type RuleInput, type JobSettings, type RuleName, type RulesConfig, type RulesConfigInput } from './rules.js';
export { resolveJob, loadTelemetry, loadRulesConfig, rulesForJob, saveJobInsights, measureJob, ruleInputForJob, workspaceRulesFile, type InsightJob } from './service.js';
export { buildReport, renderReport, windowedRate, type ReportData, type ReportOptions, type TuneTrial } from './report.js';
export {
  loadCatalog,
  jobCostReport,
  servingCostReport,
  estimateJob,
  estimateServing,
  scaleThroughput,
  localUsdPerHour,
  billedUsd,
  perMillion,
  defaultScaling,
  DEFAULT_LOCAL,
  DEFAULT_CATALOG,
  type InstanceCatalog,
  type InstanceType,
  type ScalingAssumptions,
  type LocalCostAssumptions,
  type JobMeasurement,
  type JobEstimate,
  type ServingMeasurement,
  type ServingEstimate,
  type Slo,
  type CostSettings,
  type JobCostReport,
  type ServingCostReport,
} from './cost.js';
