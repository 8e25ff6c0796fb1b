/**
 * Insights: job telemetry, profiler/debugger rules, the HTML job report and the cost model.
 * Training records telemetry through TelemetryRecorder and calls saveJobInsights at the end.
 */
export { TelemetryRecorder, type JobTelemetry, type StepRecord, type EpochRecord, type HardwareSample, type HeadStep } from './telemetry.js';
export { parseGpuSamples, parseGpuInventory, type GpuProbe } from './gpu.js';
export { runRules, RULE_NAMES, type RuleResult, type RuleInput, type RuleName, type RulesConfigInput } from './rules.js';
export { resolveJob, rulesForJob, saveJobInsights, measureJob } from './service.js';
export { buildReport, renderReport, windowedRate } from './report.js';
export { loadCatalog, jobCostReport, servingCostReport, estimateJob, estimateServing, scaleThroughput, localUsdPerHour, defaultScaling, DEFAULT_LOCAL, DEFAULT_CATALOG, type InstanceCatalog, type JobMeasurement, type ServingMeasurement, type CostSettings, type JobCostReport, type ServingCostReport } from './cost.js';
export { mmdTest, randomProjection, project, classShift, confidenceQuantiles, confidenceDrop, CONFIDENCE_QUANTILES, type ConfidenceTest, type DriftTest, type Rows } from './drift.js';
