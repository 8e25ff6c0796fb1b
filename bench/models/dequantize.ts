/**
 * Writes the float model an int8 (QLinear) ONNX model approximates: every quantized weight and
 * bias dequantized, each QLinear op replaced by its float op followed by a Clip to the range its
 * uint8 output could hold (which is how the int8 graph carries its fused ReLU/ReLU6). It gives
 * bench:gpu a real ImageNet-pretrained float network (from the shared MobileNetV2 int8 file) to
 * check fp16 against fp32 with, where no float file can be downloaded.
 *
 *   node --import tsx bench/models/dequantize.ts IN.onnx OUT.onnx
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OnnxModel, decodeTensor } from '../../src/onnx/index.js';
import { int64s, readFields } from '../../src/onnx/proto.js';

const TENSOR = { dims: 1, dataType: 2, int32Data: 5, rawData: 9 } as const;
const TYPE = { float: 1, uint8: 2, int8: 3, int32: 6 } as const;

/** An initializer's values as numbers, whatever its type (float, uint8, int8, int32). */
function values(m: OnnxModel, name: string): { dims: number[]; data: number[] } {
  const init = m.initializers.find((i) => i.name === name);
  if (!init) throw new Error(`${name} is not an initializer`);
  const fields = readFields(init.bytes);
  const type = Number(fields.find((f) => f.field === TENSOR.dataType)?.int ?? 0);
  const dims = int64s(fields, TENSOR.dims).map(Number);
  if (type === TYPE.float) return { dims, data: Array.from(decodeTensor(init.bytes).data as Float32Array) };
  const raw = fields.find((f) => f.field === TENSOR.rawData)?.bytes;
  if (raw) {
    if (type === TYPE.uint8) return { dims, data: Array.from(raw) };
    if (type === TYPE.int8) return { dims, data: Array.from(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength)) };
    if (type === TYPE.int32) return { dims, data: Array.from(new Int32Array(Uint8Array.prototype.slice.call(raw).buffer)) };
  }
  return { dims, data: int64s(fields, TENSOR.int32Data).map((v) => Number(BigInt.asIntN(32, v))) };
}

export function dequantize(bytes: Uint8Array): Uint8Array {
  const m = OnnxModel.parse(bytes);
  const scalar = (name: string) => values(m, name).data[0]!;
  let counter = 0;
  const constant = (data: number[], dims: number[]) => {
    const name = m.freshName(`dq_${counter++}`);
    m.addInitializer(name, Float32Array.from(data), dims);
    return name;
  };
  /** the float range a uint8 (or int8) output with this scale and zero point holds */
  const clipRange = (scale: string, zero: string) => {
    const s = scalar(scale);
    const z = scalar(zero);
    const unsigned = m.initializers.some((i) => i.name === zero && Number(readFields(i.bytes).find((f) => f.field === TENSOR.dataType)?.int) === TYPE.uint8);
    const [lo, hi] = unsigned ? [0, 255] : [-128, 127];
    return [constant([(lo - z) * s], []), constant([(hi - z) * s], [])];
  };
  /** per-output-channel (first axis for conv weights, last for matmul) or per-tensor dequantization */
  const weights = (q: string, scale: string, zero: string, axis: 'first' | 'last') => {
    const w = values(m, q);
    const s = values(m, scale).data;
    const z = values(m, zero).data;
    const channels = axis === 'first' ? w.dims[0]! : w.dims.at(-1)!;
    const per = w.data.length / channels;
    const channelOf = (i: number) => (axis === 'first' ? Math.floor(i / per) : i % channels);
    const data = w.data.map((v, i) => {
      const c = s.length > 1 ? channelOf(i) : 0;
      return (v - z[z.length > 1 ? c : 0]!) * s[c]!;
    });
    return { name: constant(data, w.dims), scales: s };
  };
  const nodes = m.nodes;
  m.nodes = [];
  const clipped = (opType: string, inputs: string[], output: string, attributes: Uint8Array[], scale: string, zero: string) => {
    const raw = m.freshName(`${output}_float`);
    m.nodes.push({ name: `${output}_op`, opType, domain: '', inputs, outputs: [raw], attributes });
    const [lo, hi] = clipRange(scale, zero);
    m.nodes.push({ name: `${output}_clip`, opType: 'Clip', domain: '', inputs: [raw, lo!, hi!], outputs: [output], attributes: [] });
  };
  for (const n of nodes) {
    const [a, b, c, d, e, f, g, h, i] = n.inputs;
    switch (n.opType) {
      case 'QuantizeLinear':
        clipped('Identity', [a!], n.outputs[0]!, [], b!, c!);
        break;
      case 'DequantizeLinear':
        m.nodes.push({ ...n, opType: 'Identity', inputs: [a!] });
        break;
      case 'QLinearConv': {
        const w = weights(d!, e!, f!, 'first');
        const inputs = [a!, w.name];
        if (i) {
          const xs = scalar(b!);
          inputs.push(constant(values(m, i).data.map((v, k) => v * xs * w.scales[w.scales.length > 1 ? k : 0]!), [values(m, i).data.length]));
        }
        clipped('Conv', inputs, n.outputs[0]!, n.attributes, g!, h!);
        break;
      }
      case 'QLinearMatMul': {
        const w = weights(d!, e!, f!, 'last');
        clipped('MatMul', [a!, w.name], n.outputs[0]!, [], g!, h!);
        break;
      }
      case 'QLinearAdd': {
        // an initializer operand (a quantized bias) is dequantized; a computed one is float already
        const operand = m.initializers.some((x) => x.name === d) ? constant(values(m, d!).data.map((v) => (v - scalar(f!)) * scalar(e!)), values(m, d!).dims) : d!;
        clipped('Add', [a!, operand], n.outputs[0]!, [], g!, h!);
        break;
      }
      case 'QLinearGlobalAveragePool':
        clipped('GlobalAveragePool', [a!], n.outputs[0]!, [], d!, e!);
        break;
      default:
        m.nodes.push(n);
    }
  }
  m.opsets = new Map([['', m.opsets.get('') ?? 12n]]);
  m.valueInfo = [];
  m.pruneTo(m.outputs);
  m.toposort();
  return m.serialize();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) {
    process.stderr.write('usage: node --import tsx bench/models/dequantize.ts IN.onnx OUT.onnx\n');
    process.exit(2);
  }
  writeFileSync(output, dequantize(readFileSync(input)));
}
