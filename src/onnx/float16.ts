import { DataType, OnnxModel, decodeTensor, type OnnxNode } from './model.js';
import { Writer, readFields, str, type Field } from './proto.js';

const FLOAT16 = 10;

/**
 * Inputs that ONNX defines as float32 whatever the data's type (Resize's roi and scales,
 * Upsample's scales): they stay float32 in a float16 graph.
 */
const FLOAT32_INPUTS: Record<string, number[]> = { Resize: [1, 2], Upsample: [1] };
/** Ops whose outputs are integers whatever their inputs are. */
const INTEGER_OUTPUTS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);
/** Pooling that ends a convolutional backbone: what follows it (a classifier head) stays float32. */
const BACKBONE_ENDS = new Set(['GlobalAveragePool', 'GlobalMaxPool']);

export interface Float16Options {
  /**
   * Keep in float32 everything computed from the last global pooling (a classifier's head and
   * its softmax: a few multiply-adds an image, where float16's rounding of logits could change
   * a close top-1). Default true.
   */
  float32Head?: boolean;
}

/**
 * The same float32 graph computing in float16, for GPUs, which run half precision at twice the
 * rate or more and move half the bytes: float initializers and Constant tensors are rounded to
 * float16, Casts to float become Casts to float16, and Casts at the edges keep the graph's
 * inputs and outputs as they were, so callers feed and read it unchanged. Values beyond
 * float16's range are clamped to its largest finite value. A classifier head after the
 * backbone's last global pooling stays float32 (Float16Options).
 */
export function toFloat16(graph: Uint8Array, opts: Float16Options = {}): Uint8Array {
  const m = OnnxModel.parse(graph);
  const types = elementTypes(m);
  const isFloat = (t: string) => types.get(t) === DataType.FLOAT;
  const full = opts.float32Head === false ? new Set<OnnxNode>() : headNodes(m);

  const casts: Array<{ from: string; to: string; type: number }> = [];
  const castOf = (tensor: string, type: number): string => {
    const found = casts.find((c) => c.from === tensor && c.type === type);
    if (found) return found.to;
    const to = m.freshName(`${tensor}_${type === FLOAT16 ? 'fp16' : 'fp32'}`);
    casts.push({ from: tensor, to, type });
    return to;
  };
  const initializers = new Map(m.initializers.map((i) => [i.name, i]));
  const halfInitializers = new Map<string, string>();
  const halfOf = (name: string): string => {
    let half = halfInitializers.get(name);
    if (!half) {
      half = m.freshName(`${name}_fp16`);
      m.initializers.push({ name: half, bytes: float16Tensor(initializers.get(name)!.bytes, half) });
      halfInitializers.set(name, half);
    }
    return half;
  };
  // float tensors computed in float16: the float outputs of converted nodes
  const halfTensors = new Set<string>();

  for (const n of m.nodes) {
    if (n.attributes.some(isGraphAttribute)) throw new Error(`${n.opType} holds a subgraph: graphs with control flow are not converted to float16`);
    if (full.has(n)) {
      n.inputs = n.inputs.map((t) => (halfTensors.has(t) ? castOf(t, DataType.FLOAT) : t));
      continue;
    }
    const float32At = new Set(FLOAT32_INPUTS[n.opType] ?? []);
    n.inputs = n.inputs.map((t, k) => {
      if (!t || !isFloat(t)) return t;
      if (float32At.has(k)) return halfTensors.has(t) ? castOf(t, DataType.FLOAT) : t;
      if (halfTensors.has(t)) return t;
      return initializers.has(t) ? halfOf(t) : castOf(t, FLOAT16);
    });
    n.attributes = n.attributes.map(toFloat16Attribute);
    for (const o of n.outputs) if (isFloat(o)) halfTensors.add(o);
  }

  // float outputs computed in float16: their producers write a float16 tensor, a Cast gives back the float32 name
  for (const o of m.outputs) {
    if (!halfTensors.has(o.name)) continue;
    const half = m.freshName(`${o.name}_fp16`);
    for (const n of m.nodes) {
      n.outputs = n.outputs.map((t) => (t === o.name ? half : t));
      n.inputs = n.inputs.map((t) => (t === o.name ? half : t));
    }
    for (const c of casts) if (c.from === o.name) c.from = half;
    m.addNode('Cast', [half], [o.name], [{ name: 'to', int: DataType.FLOAT }]);
  }
  for (const c of casts) m.addNode('Cast', [c.from], [c.to], [{ name: 'to', int: c.type }]);
  // intermediate types are inferred again by the runtime; float32 weights only the head reads stay
  m.valueInfo = [];
  const used = new Set(m.nodes.flatMap((n) => n.inputs));
  m.initializers = m.initializers.filter((i) => used.has(i.name) || m.outputs.some((o) => o.name === i.name));
  m.inputs = m.inputs.filter((i) => !initializers.has(i.name) || used.has(i.name));
  m.toposort();
  return m.serialize();
}

/**
 * The element type of every tensor, inferred forwards through the graph: enough to tell floats
 * from integers (shapes and indices), which is all the conversion needs.
 */
function elementTypes(m: OnnxModel): Map<string, number> {
  const types = new Map<string, number>();
  for (const i of m.inputs) types.set(i.name, i.elemType);
  for (const i of m.initializers) types.set(i.name, tensorType(i.bytes));
  for (const n of m.nodes) {
    let type: number | undefined;
    if (INTEGER_OUTPUTS.has(n.opType)) type = DataType.INT64;
    else if (n.opType === 'Cast') type = intAttribute(n, 'to');
    else if (n.opType === 'Constant' || n.opType === 'ConstantOfShape') type = tensorAttributeType(n) ?? DataType.FLOAT;
    else type = n.inputs.map((t) => types.get(t)).find((t) => t !== undefined);
    for (const o of n.outputs) if (type !== undefined) types.set(o, type);
  }
  return types;
}

/** Nodes computed from the output of the graph's last global pooling, when floats are computed after it. */
function headNodes(m: OnnxModel): Set<OnnxNode> {
  const last = m.nodes.findLast((n) => BACKBONE_ENDS.has(n.opType));
  const head = new Set<OnnxNode>();
  if (!last) return head;
  const reached = new Set(last.outputs);
  for (const n of m.nodes) {
    if (n.inputs.some((t) => reached.has(t))) {
      head.add(n);
      for (const o of n.outputs) reached.add(o);
    }
  }
  return head;
}

/** Whether a graph's float32 initializers hold most of its weights (a float model, not a quantized one). */
export function isFloatGraph(graph: Uint8Array): boolean {
  const m = OnnxModel.parse(graph);
  let floatBytes = 0;
  let otherBytes = 0;
  for (const i of m.initializers) {
    if (tensorType(i.bytes) === DataType.FLOAT) floatBytes += i.bytes.byteLength;
    else otherBytes += i.bytes.byteLength;
  }
  return floatBytes > otherBytes;
}

const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9, dataLocation: 14 } as const;
const ATTR = { name: 1, i: 3, t: 5, g: 6, graphs: 11 } as const;

function tensorType(bytes: Uint8Array): number {
  return Number(readFields(bytes).find((f) => f.field === TENSOR.dataType)?.int ?? 0);
}

/** A float32 TensorProto as float16 (raw data) named `name`, its dims kept. */
function float16Tensor(bytes: Uint8Array, name: string): Uint8Array {
  const fields = readFields(bytes);
  if (fields.some((f) => f.field === TENSOR.dataLocation && f.int === 1n)) throw new Error('tensors stored outside the model file are not converted to float16');
  const { dims, data } = decodeTensor(bytes);
  const half = float16Bits(data as Float32Array);
  return new Writer()
    .packedInts(TENSOR.dims, dims)
    .int(TENSOR.dataType, FLOAT16)
    .string(TENSOR.name, name)
    .bytes(TENSOR.rawData, new Uint8Array(half.buffer, half.byteOffset, half.byteLength))
    .finish();
}

const attributeName = (fields: Field[]): string => {
  const name = fields.find((f) => f.field === ATTR.name);
  return name ? str(name) : '';
};

function intAttribute(n: OnnxNode, name: string): number | undefined {
  for (const a of n.attributes) {
    const fields = readFields(a);
    if (attributeName(fields) === name) return Number(fields.find((f) => f.field === ATTR.i)?.int);
  }
  return undefined;
}

function tensorAttributeType(n: OnnxNode): number | undefined {
  for (const a of n.attributes) {
    const t = readFields(a).find((f) => f.field === ATTR.t);
    if (t) return tensorType(t.bytes!);
  }
  return undefined;
}

function isGraphAttribute(a: Uint8Array): boolean {
  return readFields(a).some((f) => f.field === ATTR.g || f.field === ATTR.graphs);
}

/** Cast's `to: FLOAT` becomes FLOAT16; a float tensor attribute (Constant, ConstantOfShape) is rounded. */
function toFloat16Attribute(a: Uint8Array): Uint8Array {
  const fields = readFields(a);
  const name = attributeName(fields);
  let changed = false;
  const out = fields.map((f): Field => {
    if (name === 'to' && f.field === ATTR.i && f.int === BigInt(DataType.FLOAT)) {
      changed = true;
      return { ...f, int: BigInt(FLOAT16) };
    }
    if (f.field === ATTR.t && tensorType(f.bytes!) === DataType.FLOAT) {
      changed = true;
      const tensorName = readFields(f.bytes!).find((x) => x.field === TENSOR.name);
      return { ...f, bytes: float16Tensor(f.bytes!, tensorName ? str(tensorName) : '') };
    }
    return f;
  });
  if (!changed) return a;
  const w = new Writer();
  for (const f of out) w.raw(f);
  return w.finish();
}

/** IEEE 754 half-precision bits of each value, rounded to nearest even; beyond its range, ±65504. */
export function float16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  // the values' bits read in place (a copy when unaligned): one element at a time through a scratch array cost twice the time
  const bits = values.byteOffset % 4 === 0 ? new Uint32Array(values.buffer, values.byteOffset, values.length) : new Uint32Array(values.slice().buffer);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = mant ? 0x7e00 : sign | 0x7bff;
      continue;
    }
    const e = exp - 112;
    let h: number;
    if (e >= 0x1f) h = 0x7bff;
    else if (e <= 0) {
      if (e < -10) h = 0;
      else {
        mant |= 0x800000;
        const shift = 14 - e;
        h = mant >>> shift;
        const rest = mant & ((1 << shift) - 1);
        const halfway = 1 << (shift - 1);
        if (rest > halfway || (rest === halfway && h & 1)) h++;
      }
    } else {
      h = (e << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
      if (h >= 0x7c00) h = 0x7bff;
    }
    out[i] = sign | h;
  }
  return out;
}

/** The float values of half-precision bits (tests and accuracy checks read float16 data with it). */
export function float16Values(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    out[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}
