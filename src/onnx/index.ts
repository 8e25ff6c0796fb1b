/**
 * ONNX: a protobuf codec for model files (read, edit, write) and a graph builder. Running a
 * model (sessions, devices, threads) is src/inference's.
 */
export { OnnxModel, decodeTensor, type ValueInfo } from './model.js';
export { GraphBuilder } from './builder.js';
export { toFloat16, isFloatGraph, float16Bits, float16Values, type Float16Options } from './float16.js';
