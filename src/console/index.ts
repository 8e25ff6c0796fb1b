/**
 * The web console: a Preact front end (built by `npm run build` into dist/console/web) and its
 * JSON API under /api/, served by the daemon's admin port. See docs/CONSOLE.md.
 */
export { consolePlugin, type ConsoleOptions } from './plugin.js';
export { Assets, ASSETS_DIR } from './assets.js';
export { OWNER, CSRF_HEADER } from './auth.js';
export { parseTotals, quantile, type TrafficPoint } from './traffic.js';
