export { startDaemon, type Daemon } from './daemon.js';
export { findDaemon, adminRequest, invokeEndpoint, invokeEndpointAsync, asyncRequestStatus, dataPlaneUrl, adminUrl } from './client.js';
export { daemonPaths, readState, clearState, isAlive, type DaemonState } from './state.js';
export { checkHttpLimits, DEFAULT_HTTP_LIMITS, type HttpLimits } from './http-limits.js';
