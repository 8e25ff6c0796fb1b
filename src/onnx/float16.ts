import { DataType, OnnxModel, decodeTensor } from './model.js';
import { Writer, readFields, str, type Field } from './proto.js';

const FLOAT16 = 10;

/**
 * Inputs that ONNX defines as float32 whatever the data's type (Resize's roi and scales,
 * Upsample's scales): they stay float32 in a float16 graph.
 */
const FLOAT32_INPUTS: Record<string, number[]> = { Resize: [1, 2], Upsample: [1] };

/**
 * The same float32 graph computing in float16, for GPUs, which run half precision at twice the
 * rate or more and move half the bytes: float initializers and Constant tensors are rounded to
 * float16, Casts to float become Casts to float16, and Casts at the edges keep the graph's
 * inputs and outputs as they were, so callers feed and read it unchanged. Values beyond
 * float16's range are clamped to its largest finite value.
 */
export function toFloat16(graph: Uint8Array): Uint8Array {
  const m = OnnxModel.parse(graph);
  const casts: Array<{ from: string; to: string; type: number }> = [];
  const castOf = (tensor: string, type: number): string => {
    const found = casts.find((c) => c.from === tensor && c.type === type);
    if (found) return found.to;
    const to = m.freshName(`${tensor}_${type === FLOAT16 ? 'fp16' : 'fp32'}`);
    casts.push({ from: tensor, to, type });
    return to;
  };

  const floatInitializers = new Set(m.initializers.filter((i) => decodeTensorType(i.bytes) === DataType.FLOAT).map((i) => i.name));
  const floatInputs = new Set(m.dataInputs.filter((i) => i.elemType === DataType.FLOAT).map((i) => i.name));
  // float32 tensors that float16 nodes would read: graph inputs (cast at the edge) and the
  // initializers that must stay float32 for a Resize and are read elsewhere too
  const keptFloat = new Set<string>();
  for (const n of m.nodes) for (const k of FLOAT32_INPUTS[n.opType] ?? []) if (n.inputs[k] && floatInitializers.has(n.inputs[k])) keptFloat.add(n.inputs[k]);
  for (const n of m.nodes) {
    if (n.attributes.some(isGraphAttribute)) throw new Error(`${n.opType} holds a subgraph: graphs with control flow are not converted to float16`);
    n.attributes = n.attributes.map(toFloat16Attribute);
    const float32At = new Set(FLOAT32_INPUTS[n.opType] ?? []);
    n.inputs = n.inputs.map((input, k) => {
      if (!input) return input;
      if (float32At.has(k)) return floatInitializers.has(input) || floatInputs.has(input) ? input : castOf(input, DataType.FLOAT);
      return floatInputs.has(input) || keptFloat.has(input) ? castOf(input, FLOAT16) : input;
    });
  }
  m.initializers = m.initializers.map((i) => (floatInitializers.has(i.name) && !keptFloat.has(i.name) ? { name: i.name, bytes: float16Tensor(i.bytes) } : i));
  // older models list initializers among the inputs too: their declared type follows
  for (const i of m.inputs) if (floatInitializers.has(i.name) && !keptFloat.has(i.name)) i.elemType = FLOAT16;

  // float outputs: their producers write a float16 tensor, a Cast gives back the float32 name
  for (const o of m.outputs) {
    if (o.elemType !== DataType.FLOAT) continue;
    const half = m.freshName(`${o.name}_fp16`);
    for (const n of m.nodes) {
      n.outputs = n.outputs.map((t) => (t === o.name ? half : t));
      n.inputs = n.inputs.map((t) => (t === o.name ? half : t));
    }
    m.addNode('Cast', [half], [o.name], [{ name: 'to', int: DataType.FLOAT }]);
  }
  for (const c of casts) m.addNode('Cast', [c.from], [c.to], [{ name: 'to', int: c.type }]);
  // intermediate types are inferred again by the runtime
  m.valueInfo = m.valueInfo.filter((v) => v.elemType !== DataType.FLOAT);
  m.toposort();
  return m.serialize();
}

/** Whether a graph's float32 initializers hold most of its weights (a float model, not a quantized one). */
export function isFloatGraph(graph: Uint8Array): boolean {
  const m = OnnxModel.parse(graph);
  let floatBytes = 0;
  let otherBytes = 0;
  for (const i of m.initializers) {
    if (decodeTensorType(i.bytes) === DataType.FLOAT) floatBytes += i.bytes.byteLength;
    else otherBytes += i.bytes.byteLength;
  }
  return floatBytes > otherBytes;
}

const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9, dataLocation: 14 } as const;
const ATTR = { t: 5, g: 6, graphs: 11, i: 3, name: 1 } as const;

function decodeTensorType(bytes: Uint8Array): number {
  return Number(readFields(bytes).find((f) => f.field === TENSOR.dataType)?.int ?? 0);
}

/** A float32 TensorProto as float16 (raw data), its name and dims kept. */
function float16Tensor(bytes: Uint8Array): Uint8Array {
  const fields = readFields(bytes);
  if (fields.some((f) => f.field === TENSOR.dataLocation && f.int === 1n)) throw new Error('tensors stored outside the model file are not converted to float16');
  const name = fields.find((f) => f.field === TENSOR.name);
  const { dims, data } = decodeTensor(bytes);
  const half = float16Bits(data as Float32Array);
  return new Writer()
    .packedInts(TENSOR.dims, dims)
    .int(TENSOR.dataType, FLOAT16)
    .string(TENSOR.name, name ? str(name) : '')
    .bytes(TENSOR.rawData, new Uint8Array(half.buffer, half.byteOffset, half.byteLength))
    .finish();
}

function isGraphAttribute(a: Uint8Array): boolean {
  return readFields(a).some((f) => f.field === ATTR.g || f.field === ATTR.graphs);
}

/** Cast's `to: FLOAT` becomes FLOAT16; a float tensor attribute (Constant, ConstantOfShape) is rounded. */
function toFloat16Attribute(a: Uint8Array): Uint8Array {
  const fields = readFields(a);
  const name = fields.find((f) => f.field === ATTR.name);
  const attrName = name ? str(name) : '';
  let changed = false;
  const out = fields.map((f): Field => {
    if (attrName === 'to' && f.field === ATTR.i && f.int === BigInt(DataType.FLOAT)) {
      changed = true;
      return { ...f, int: BigInt(FLOAT16) };
    }
    if (f.field === ATTR.t && decodeTensorType(f.bytes!) === DataType.FLOAT) {
      changed = true;
      return { ...f, bytes: float16Tensor(f.bytes!) };
    }
    return f;
  });
  if (!changed) return a;
  const w = new Writer();
  for (const f of out) w.raw(f);
  return w.finish();
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half-precision bits of each value, rounded to nearest even; beyond its range, ±65504. */
export function float16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i]!;
    const x = u32[0]!;
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
