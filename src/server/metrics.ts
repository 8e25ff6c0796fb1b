import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricSample } from '../console/index.js';
import type { DriftResult } from '../housekeeping/index.js';
import type { ServingHooks, VariantLoad } from '../serving/index.js';

export type DriftGaugeInput = Pick<DriftResult, 'endpoint' | 'mmd' | 'threshold' | 'classShift' | 'meanConfidence' | 'alarm'>;

/**
 * The daemon's Prometheus metrics, served on the data plane at /metrics. Gauges (replicas,
 * queue depth) are read from the runtime at scrape time; the rest are recorded as things happen.
 */
export class ServingMetrics {
  readonly registry = new Registry();
  private readonly latency: Histogram<'endpoint' | 'variant' | 'status'>;
  private readonly errors: Counter<'endpoint' | 'status' | 'code'>;
  private readonly batchSize: Histogram<'endpoint' | 'variant'>;
  private readonly batchDuration: Histogram<'endpoint' | 'variant'>;
  private readonly scalingEvents: Counter<'endpoint' | 'variant' | 'direction'>;
  private readonly fp32Reruns: Counter<'endpoint' | 'variant'>;
  private readonly fp32Alone: Counter<'endpoint' | 'variant'>;

  constructor(
    load: () => VariantLoad[],
    /** the newest drift check of each endpoint that has one (kennel endpoints drift, the daemon's schedule) */
    drift: () => DriftGaugeInput[] = () => [],
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'kennel_daemon_' });
    this.latency = new Histogram({
      name: 'kennel_invocation_duration_seconds',
      help: 'Invocation latency, from request received to response sent',
      labelNames: ['endpoint', 'variant', 'status'],
      buckets: [0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.errors = new Counter({ name: 'kennel_invocation_errors_total', help: 'Invocations answered with an error, by HTTP status and error code', labelNames: ['endpoint', 'status', 'code'], registers });
    this.batchSize = new Histogram({ name: 'kennel_batch_size', help: 'Images per model run (dynamic batching)', labelNames: ['endpoint', 'variant'], buckets: [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256], registers });
    // the model's share of a request's latency: what is left of it is queueing, decoding and HTTP
    this.batchDuration = new Histogram({
      name: 'kennel_batch_duration_seconds',
      help: 'Model run time per batch, as the replica waited for it',
      labelNames: ['endpoint', 'variant'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.fp32Reruns = new Counter({
      name: 'kennel_fp32_reruns_total',
      help: 'Images whose two best classes came out of an fp16 session (precision auto) within the near-tie gap, and were answered by fp32',
      labelNames: ['endpoint', 'variant'],
      registers,
    });
    this.fp32Alone = new Counter({
      name: 'kennel_fp32_alone_total',
      help: 'Images an fp16 replica (precision auto) ran in fp32 alone, while most of its recent batches held many near ties',
      labelNames: ['endpoint', 'variant'],
      registers,
    });
    this.scalingEvents = new Counter({ name: 'kennel_scaling_events_total', help: 'Autoscaler decisions', labelNames: ['endpoint', 'variant', 'direction'], registers });
    new Gauge({
      name: 'kennel_queue_depth',
      help: 'Requests in the system per variant: waiting for a replica or on one',
      labelNames: ['endpoint', 'variant'],
      registers,
      collect() {
        this.reset();
        for (const v of load()) this.set({ endpoint: v.endpoint, variant: v.variant }, v.queued);
      },
    });
    new Gauge({
      name: 'kennel_replicas',
      help: 'Replica processes per variant and state',
      labelNames: ['endpoint', 'variant', 'state'],
      registers,
      collect() {
        this.reset();
        for (const v of load()) for (const [state, n] of Object.entries(v.replicas)) this.set({ endpoint: v.endpoint, variant: v.variant, state }, n);
      },
    });
    // drift: the newest check's numbers per endpoint, so an alert rule can watch them
    const driftGauges: Array<[string, string, (d: DriftGaugeInput) => number]> = [
      ['kennel_drift_mmd', 'MMD^2 between the newest captured requests and the training images (backbone features)', (d) => d.mmd],
      ['kennel_drift_mmd_threshold', 'Its threshold: the (1 - alpha) quantile of a permutation baseline', (d) => d.threshold],
      ['kennel_drift_class_shift', 'Total variation between the captured top-1 labels and the training classes', (d) => d.classShift],
      ['kennel_drift_mean_confidence', 'Mean top-1 probability of the checked captures', (d) => d.meanConfidence],
      ['kennel_drift_alarm', '1 when the newest drift check alarmed (MMD or class shift above its threshold, or mean confidence below its)', (d) => (d.alarm ? 1 : 0)],
    ];
    for (const [name, help, value] of driftGauges) {
      new Gauge({
        name,
        help,
        labelNames: ['endpoint'],
        registers,
        collect() {
          this.reset();
          for (const d of drift()) this.set({ endpoint: d.endpoint }, value(d));
        },
      });
    }
  }

  readonly hooks: ServingHooks = {
    batch: (endpoint, variant, run) => {
      this.batchSize.observe({ endpoint, variant }, run.size);
      this.batchDuration.observe({ endpoint, variant }, run.ms / 1000);
      this.fp32Reruns.inc({ endpoint, variant }, run.fp32Reruns);
      this.fp32Alone.inc({ endpoint, variant }, run.fp32Alone);
    },
    scaling: (endpoint, variant, direction) => this.scalingEvents.inc({ endpoint, variant, direction }),
  };

  /** `endpoint` is only a known endpoint's name (so unknown names cannot grow the label set); `variant` is "" when none was picked. */
  invocation(endpoint: string, variant: string, status: number, seconds: number, code?: string): void {
    this.latency.observe({ endpoint, variant, status: String(status) }, seconds);
    if (status >= 400) this.errors.inc({ endpoint, status: String(status), code: code ?? '' });
  }

  contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The invocation histogram and error counter as samples, read in process (the console's traffic charts). */
  async invocationSamples(): Promise<MetricSample[]> {
    const [latency, errors] = await Promise.all([this.latency.get(), this.errors.get()]);
    return [...latency.values.map((v) => ({ metricName: v.metricName ?? latency.name, labels: v.labels, value: v.value })), ...errors.values.map((v) => ({ metricName: errors.name, labels: v.labels, value: v.value }))];
  }
}
