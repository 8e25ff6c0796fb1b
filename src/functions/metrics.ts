import { Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';

function reuse<T extends Metric>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Prometheus metrics of the function gateway (registered once per registry). */
export class FunctionMetrics {
  readonly invocations: Counter<'function' | 'outcome'>;
  readonly coldStarts: Counter<'function'>;
  readonly throttles: Counter<'function'>;
  readonly duration: Histogram<'function' | 'cold_start'>;
  readonly initDuration: Histogram<'function' | 'kind'>;
  readonly concurrent: Gauge<'function'>;
  readonly warmInstances: Gauge<'function'>;
  readonly eventsAccepted: Counter<'function'>;
  readonly eventsRejected: Counter<'function'>;
  readonly eventsRetried: Counter<'function' | 'reason'>;
  readonly eventsFailed: Counter<'function' | 'reason'>;
  /** the asynchronous queue's stored events by function and status, read at scrape time */
  private eventCounts: () => Array<{ function: string; status: string; n: number }> = () => [];

  constructor(readonly registry: Registry = new Registry()) {
    const registers = [registry];
    this.invocations = reuse(registry, 'kennel_function_invocations_total', () => new Counter({ name: 'kennel_function_invocations_total', help: 'Function invocations by outcome (ok, error, timeout)', labelNames: ['function', 'outcome'], registers }));
    this.coldStarts = reuse(registry, 'kennel_function_cold_starts_total', () => new Counter({ name: 'kennel_function_cold_starts_total', help: 'Invocations that had to start a new instance', labelNames: ['function'], registers }));
    this.throttles = reuse(registry, 'kennel_function_throttles_total', () => new Counter({ name: 'kennel_function_throttles_total', help: 'Invocations refused with 429 at the concurrency limit', labelNames: ['function'], registers }));
    this.duration = reuse(registry, 'kennel_function_duration_seconds', () => new Histogram({ name: 'kennel_function_duration_seconds', help: 'Invocation time, instance start included for cold starts', labelNames: ['function', 'cold_start'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers }));
    this.initDuration = reuse(registry, 'kennel_function_init_duration_seconds', () => new Histogram({ name: 'kennel_function_init_duration_seconds', help: 'Instance start time, by kind (on_demand: during a call; provisioned: ahead of calls)', labelNames: ['function', 'kind'], buckets: [0.001, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers }));
    this.concurrent = reuse(registry, 'kennel_function_concurrent_executions', () => new Gauge({ name: 'kennel_function_concurrent_executions', help: 'Executions in progress', labelNames: ['function'], registers }));
    this.eventsAccepted = reuse(registry, 'kennel_function_events_accepted_total', () => new Counter({ name: 'kennel_function_events_accepted_total', help: 'Asynchronous (Event) invocations stored and answered 202', labelNames: ['function'], registers }));
    this.eventsRejected = reuse(registry, 'kennel_function_events_rejected_total', () => new Counter({ name: 'kennel_function_events_rejected_total', help: 'Asynchronous invocations refused with 429 because the queue was full', labelNames: ['function'], registers }));
    this.eventsRetried = reuse(registry, 'kennel_function_events_retried_total', () => new Counter({ name: 'kennel_function_events_retried_total', help: 'Asynchronous invocations put back in the queue, by reason (error: the run failed; throttle: concurrency limit or overload)', labelNames: ['function', 'reason'], registers }));
    this.eventsFailed = reuse(registry, 'kennel_function_events_failed_total', () => new Counter({ name: 'kennel_function_events_failed_total', help: 'Asynchronous invocations sent to the failure list, by reason (retries, age, deleted)', labelNames: ['function', 'reason'], registers }));
    const counts = () => this.eventCounts();
    reuse(registry, 'kennel_function_events', () => new Gauge({
      name: 'kennel_function_events',
      help: 'Asynchronous invocations stored now, by status (queued, running, failed: listed by kennel functions events NAME)',
      labelNames: ['function', 'status'],
      registers,
      collect() {
        this.reset();
        for (const c of counts()) this.set({ function: c.function, status: c.status }, c.n);
      },
    }));
    this.warmInstances = reuse(registry, 'kennel_function_warm_instances', () => new Gauge({ name: 'kennel_function_warm_instances', help: 'Started instances waiting for a call', labelNames: ['function'], registers }));
  }

  /** Where the stored-events gauge reads from (the gateway's event queue). */
  readEventCounts(read: () => Array<{ function: string; status: string; n: number }>): void {
    this.eventCounts = read;
  }
}
