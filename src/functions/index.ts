/**
 * Functions: the "Lambda in front of the endpoint". Definitions with least-privilege execution
 * roles, the built-in classify handler, isolated user handlers, reserved and provisioned
 * concurrency, metrics, and the fastify routes that expose them.
 */
export { FunctionGateway, type Invocation } from './gateway.js';
export { functionsRoutes } from './routes.js';
export { createFunction, updateFunction, deleteFunction, getFunction, findFunction, listFunctions, type FunctionDefinition, type FunctionSettings } from './store.js';
export { EVENT_QUEUE_DEFAULTS, listFailedEvents, eventCounts, replayEvents, purgeEvents, type EventQueueOptions, type FailedEvent } from './events.js';
export { endpointClientFor } from './endpoint-client.js';
export type { EndpointClient, EndpointResult } from './types.js';
