/**
 * Functions: the "Lambda in front of the endpoint". Definitions with least-privilege execution
 * roles, the built-in classify handler, isolated user handlers, reserved and provisioned
 * concurrency, metrics, and the fastify routes that expose them.
 */
export { FunctionGateway, type GatewayOptions, type InvokeOptions, type Invocation } from './gateway.js';
export { functionsRoutes, type FunctionsRoutesOptions } from './routes.js';
export {
  createFunction,
  updateFunction,
  deleteFunction,
  getFunction,
  findFunction,
  listFunctions,
  leastPrivilege,
  roleOf,
  BUILTIN_CLASSIFY,
  HTTP_API_PREFIX,
  FUNCTION_DEFAULTS,
  type FunctionDefinition,
  type FunctionSettings,
} from './store.js';
export { EventQueue, EVENT_QUEUE_DEFAULTS, listFailedEvents, eventCounts, replayEvents, purgeEvents, type EventQueueOptions, type FailedEvent, type EventCounts } from './events.js';
export { classifyHandler } from './classify.js';
export { endpointClientFor } from './endpoint-client.js';
export { FunctionMetrics } from './metrics.js';
export type { EndpointClient, EndpointResult, EndpointPrediction, HandlerContext, ProxyResponse } from './types.js';
