import * as ort from 'onnxruntime-node';
import { Errors } from '../core/index.js';
import { OnnxModel, type ValueInfo } from '../onnx/index.js';
import { inputShape, type PreprocessSpec } from '../inference/index.js';

export const FEATURES_OUTPUT = 'kennel_features';

export interface FeatureTensor {
  /** the tensor the feature vector is read from */
  tensor: string;
  /** how it was found, for `backbones add` output */
  how: string;
}

/**
 * Finds the penultimate pooled feature tensor: the input of the last global average pool
 * (dequantized for int8 graphs), or else the input of the final classifier MatMul/Gemm.
 */
export function findFeatureTensor(m: OnnxModel): FeatureTensor {
  const pools = m.nodes.filter((n) => /^(QLinear)?Global(Average|Max)Pool$/.test(n.opType));
  const pool = pools.at(-1);
  if (pool && pool.opType === 'GlobalAveragePool') return { tensor: pool.inputs[0]!, how: `input of ${pool.opType} node ${pool.name || pool.outputs[0]}` };
  if (pool && pool.opType === 'QLinearGlobalAveragePool') {
    const q = pool.inputs[0]!;
    const dq = m.consumersOf(q).find((n) => n.opType === 'DequantizeLinear');
    const tensor = dq ? dq.outputs[0]! : dequantize(m, q, pool.inputs[1]!, pool.inputs[2]!);
    return { tensor, how: `dequantized input of QLinearGlobalAveragePool (${q})` };
  }
  const outputs = new Set(m.outputs.map((o) => o.name));
  for (let i = m.nodes.length - 1; i >= 0; i--) {
    const n = m.nodes[i]!;
    if ((n.opType === 'Gemm' || n.opType === 'MatMul') && reaches(m, n.outputs[0]!, outputs)) {
      return { tensor: n.inputs[0]!, how: `input of the final ${n.opType} classifier` };
    }
  }
  throw Errors.InvalidRequest('Could not find the pooled feature tensor in this model.', 'Name it with --feature-tensor NAME (the tensor before the classifier layer).');
}

function dequantize(m: OnnxModel, q: string, scale: string, zero: string): string {
  const out = m.freshName(`${q}_dequantized`);
  m.addNode('DequantizeLinear', [q, scale, zero], [out]);
  return out;
}

function reaches(m: OnnxModel, tensor: string, targets: Set<string>, depth = 0): boolean {
  if (targets.has(tensor)) return true;
  if (depth > 8) return false;
  return m.consumersOf(tensor).some((n) => n.outputs.some((o) => reaches(m, o, targets, depth + 1)));
}

/**
 * Builds the feature extractor: the backbone pruned to `tensor`, pooled to [N, D] when it is a
 * feature map. The batch dimension is made symbolic so any batch size runs.
 */
export async function buildExtractor(source: OnnxModel, tensor: string, spec: PreprocessSpec): Promise<{ model: OnnxModel; dim: number }> {
  if (!source.hasTensor(tensor)) throw Errors.InvalidRequest(`The model has no tensor named "${tensor}".`, 'Check the name with a model viewer such as Netron, or leave --feature-tensor out to detect it.');
  const rank = (await probe(source, tensor, spec)).length;
  const m = source;
  let out = tensor;
  if (rank === 4) {
    const pooled = m.freshName(`${tensor}_pooled`);
    m.addNode('GlobalAveragePool', [out], [pooled]);
    out = pooled;
  }
  if (rank !== 2) {
    const flat = m.freshName(FEATURES_OUTPUT);
    m.addNode('Flatten', [out], [flat], [{ name: 'axis', int: 1 }]);
    out = flat;
  }
  if (out !== FEATURES_OUTPUT) m.addNode('Identity', [out], [FEATURES_OUTPUT]);
  m.pruneTo([{ name: FEATURES_OUTPUT, elemType: 1, shape: ['batch', '?'] }]);
  m.valueInfo = [];
  const input = m.dataInputs[0]!;
  m.inputs = m.inputs.map((i) => (i === input ? { ...i, shape: symbolicBatch(i) } : i));
  m.toposort();
  const dims = await probe(m, FEATURES_OUTPUT, spec);
  return { model: m, dim: dims[1]! };
}

function symbolicBatch(i: ValueInfo): Array<number | string> | undefined {
  return i.shape ? ['batch', ...i.shape.slice(1)] : undefined;
}

/** Runs the graph on a zero batch of 2 to learn a tensor's shape. */
async function probe(model: OnnxModel, tensor: string, spec: PreprocessSpec): Promise<number[]> {
  const m = OnnxModel.parse(model.serialize());
  const input = m.dataInputs[0]!;
  const batch = typeof input.shape?.[0] === 'number' ? input.shape[0] : 2;
  if (m.outputs.every((o) => o.name !== tensor)) m.outputs.push({ name: tensor, elemType: 1 });
  m.pruneTo(m.outputs.filter((o) => o.name === tensor));
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(m.serialize(), { graphOptimizationLevel: 'basic' });
  } catch (e) {
    throw Errors.InvalidRequest(`ONNX Runtime could not load the model: ${(e as Error).message.split('\n')[0]}`, 'Check that the file is a valid ONNX image classifier.');
  }
  try {
    const shape = inputShape(spec, batch);
    const feeds = { [input.name]: new ort.Tensor('float32', new Float32Array(shape.reduce((a, b) => a * b, 1)), shape) };
    const result = await session.run(feeds, [tensor]);
    return [...result[tensor]!.dims];
  } catch (e) {
    throw Errors.InvalidRequest(`The model did not run on a ${shape(spec)} input: ${(e as Error).message.split('\n')[0]}`, 'Pass --input-size (and --layout) matching the model.');
  } finally {
    await session.release();
  }
}

const shape = (spec: PreprocessSpec) => `${spec.layout} ${spec.size}x${spec.size}`;

/** Reads layout and size from the input's declared shape when it is fixed. */
export function inferInputLayout(m: OnnxModel): { layout: 'NCHW' | 'NHWC'; size?: number } {
  const s = m.dataInputs[0]?.shape;
  if (s && s.length === 4) {
    if (s[1] === 3) return { layout: 'NCHW', size: typeof s[2] === 'number' ? s[2] : undefined };
    if (s[3] === 3) return { layout: 'NHWC', size: typeof s[1] === 'number' ? s[1] : undefined };
  }
  return { layout: 'NCHW' };
}
