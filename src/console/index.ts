/**
 * The web console: a Preact front end (built by `npm run build` into dist/console/web) and its
 * JSON API under /api/, served by the daemon's admin port. See docs/CONSOLE.md.
 */
export { consolePlugin } from './plugin.js';
export { TrafficSampler, totalsOf, quantile, type MetricSample } from './traffic.js';
export { LogBook, redact, type LogBookOptions } from './logs.js';
