/**
 * ONNX: a protobuf codec for model files (read, edit, write), a graph builder, the session
 * options every Kennel ORT session uses, and sessions that run in their own thread.
 */
export { OnnxModel } from './model.js';
export { GraphBuilder } from './builder.js';
export { executionProviders, sessionOptions, type Device, type SessionSettings } from './session.js';
export { assertDevice } from './device.js';
export { ThreadedSession } from './threaded.js';
