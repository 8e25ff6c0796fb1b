/**
 * ONNX ModelProto reading and editing at the level Kennel needs: list nodes, find tensors,
 * add nodes/initializers/outputs, prune to chosen outputs, merge graphs. Fields Kennel does
 * not interpret (weights, attributes, metadata) pass through as raw bytes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Errors, KennelError } from '../core/index.js';
import { type Field, Writer, int64s, readFields, str } from './proto.js';

export const enum DataType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  /** encoded AttributeProto messages */
  attributes: Uint8Array[];
}

export interface ValueInfo {
  name: string;
  elemType: number;
  /** numbers for fixed dims, strings for symbolic ones */
  shape?: Array<number | string>;
}

export interface Initializer {
  name: string;
  /** the encoded TensorProto */
  bytes: Uint8Array;
}

// ModelProto / GraphProto / NodeProto field numbers from onnx.proto
const MODEL_GRAPH = 7;
const MODEL_OPSET = 8;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12, valueInfo: 13 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const TENSOR = { dims: 1, dataType: 2, floatData: 4, int64Data: 7, name: 8, rawData: 9 } as const;

export class OnnxModel {
  nodes: OnnxNode[] = [];
  initializers: Initializer[] = [];
  inputs: ValueInfo[] = [];
  outputs: ValueInfo[] = [];
  valueInfo: ValueInfo[] = [];
  graphName = 'graph';
  /** opset per domain ('' = ai.onnx) */
  opsets = new Map<string, bigint>();
  private modelFields: Field[] = [];
  private graphExtra: Field[] = [];

  static parse(buf: Uint8Array): OnnxModel {
    const m = new OnnxModel();
    for (const f of readFields(buf)) {
      if (f.field === MODEL_GRAPH) m.parseGraph(f.bytes!);
      else if (f.field === MODEL_OPSET) {
        const fs = readFields(f.bytes!);
        const domain = fs.find((x) => x.field === 1);
        const version = fs.find((x) => x.field === 2);
        m.opsets.set(domain ? str(domain) : '', version?.int ?? 1n);
      } else m.modelFields.push(f);
    }
    if (m.nodes.length === 0) throw new Error('not an ONNX model: the file has no graph nodes');
    return m;
  }

  /**
   * Reads and parses an .onnx file given by a user; a missing or non-ONNX file is a KennelError
   * whose hint says how to get an ONNX file (`then` completes "Export the model ..., then ...").
   */
  static readFile(file: string, then: string): { bytes: Buffer; model: OnnxModel } {
    if (!existsSync(file)) throw Errors.InvalidRequest(`${file} does not exist.`, 'Pass the path of an .onnx file.');
    const bytes = readFileSync(file);
    try {
      return { bytes, model: OnnxModel.parse(bytes) };
    } catch {
      throw Errors.InvalidRequest(`${file} is not an ONNX model.`, `Export the model with torch.onnx.export (or tf2onnx), then ${then}.`);
    }
  }

  /** A new empty model (used for head graphs built from scratch). */
  static create(opset = 17, irVersion = 8): OnnxModel {
    const m = new OnnxModel();
    m.opsets.set('', BigInt(opset));
    m.modelFields = readFields(new Writer().int(1, irVersion).string(2, 'kennel').finish());
    return m;
  }

  private parseGraph(buf: Uint8Array): void {
    for (const f of readFields(buf)) {
      switch (f.field) {
        case GRAPH.node:
          this.nodes.push(decodeNode(f.bytes!));
          break;
        case GRAPH.initializer:
          this.initializers.push({ name: tensorName(f.bytes!), bytes: f.bytes! });
          break;
        case GRAPH.input:
          this.inputs.push(decodeValueInfo(f.bytes!));
          break;
        case GRAPH.output:
          this.outputs.push(decodeValueInfo(f.bytes!));
          break;
        case GRAPH.valueInfo:
          this.valueInfo.push(decodeValueInfo(f.bytes!));
          break;
        case GRAPH.name:
          this.graphName = str(f);
          break;
        default:
          this.graphExtra.push(f);
      }
    }
  }

  /** Graph inputs that are real inputs (older models also list initializers as inputs). */
  get dataInputs(): ValueInfo[] {
    const init = new Set(this.initializers.map((i) => i.name));
    return this.inputs.filter((i) => !init.has(i.name));
  }

  producerOf(tensor: string): OnnxNode | undefined {
    return this.nodes.find((n) => n.outputs.includes(tensor));
  }

  consumersOf(tensor: string): OnnxNode[] {
    return this.nodes.filter((n) => n.inputs.includes(tensor));
  }

  hasTensor(name: string): boolean {
    return (
      this.nodes.some((n) => n.outputs.includes(name)) ||
      this.inputs.some((i) => i.name === name) ||
      this.initializers.some((i) => i.name === name)
    );
  }

  /** A tensor name not yet used in the graph. */
  freshName(base: string): string {
    let name = base;
    for (let i = 1; this.hasTensor(name); i++) name = `${base}_${i}`;
    return name;
  }

  addNode(opType: string, inputs: string[], outputs: string[], attrs: Attr[] = [], domain = ''): OnnxNode {
    const node: OnnxNode = {
      name: this.freshNodeName(outputs[0] ?? opType),
      opType,
      domain,
      inputs,
      outputs,
      attributes: attrs.map(encodeAttr),
    };
    this.nodes.push(node);
    return node;
  }

  private freshNodeName(base: string): string {
    const used = new Set(this.nodes.map((n) => n.name));
    let name = `kennel/${base}`;
    for (let i = 1; used.has(name); i++) name = `kennel/${base}_${i}`;
    return name;
  }

  addInitializer(name: string, data: Float32Array | BigInt64Array | Int32Array, dims: number[]): void {
    this.initializers.push({ name, bytes: encodeTensor(name, data, dims) });
  }

  /**
   * Keeps only what the given outputs need: drops unreachable nodes and unused initializers,
   * so ORT does no work for outputs nobody reads (it executes every node of a graph).
   */
  pruneTo(outputs: ValueInfo[]): void {
    const needed = new Set(outputs.map((o) => o.name));
    const kept: OnnxNode[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => needed.has(o))) {
        kept.push(n);
        for (const inp of n.inputs) if (inp) needed.add(inp);
      }
    }
    this.nodes = kept.reverse();
    this.outputs = outputs;
    this.initializers = this.initializers.filter((i) => needed.has(i.name));
    this.inputs = this.inputs.filter((i) => needed.has(i.name));
    this.valueInfo = this.valueInfo.filter((v) => needed.has(v.name));
  }

  /** Topological order check: ONNX requires nodes sorted so inputs are produced first. */
  toposort(): void {
    const available = new Set<string>([...this.inputs.map((i) => i.name), ...this.initializers.map((i) => i.name), '']);
    const pending = [...this.nodes];
    const sorted: OnnxNode[] = [];
    while (pending.length) {
      const idx = pending.findIndex((n) => n.inputs.every((i) => available.has(i)));
      if (idx < 0) throw new Error(`graph has a cycle or a missing input near node ${pending[0]!.name}`);
      const [n] = pending.splice(idx, 1);
      sorted.push(n!);
      for (const o of n!.outputs) available.add(o);
    }
    this.nodes = sorted;
  }

  serialize(): Uint8Array {
    const g = new Writer();
    for (const n of this.nodes) g.message(GRAPH.node, encodeNode(n));
    g.string(GRAPH.name, this.graphName);
    for (const i of this.initializers) g.bytes(GRAPH.initializer, i.bytes);
    for (const f of this.graphExtra) g.raw(f);
    for (const i of this.inputs) g.message(GRAPH.input, encodeValueInfo(i));
    for (const o of this.outputs) g.message(GRAPH.output, encodeValueInfo(o));
    for (const v of this.valueInfo) g.message(GRAPH.valueInfo, encodeValueInfo(v));
    const m = new Writer();
    for (const f of this.modelFields) m.raw(f);
    m.message(MODEL_GRAPH, g);
    for (const [domain, version] of this.opsets) {
      const o = new Writer();
      if (domain) o.string(1, domain);
      o.int(2, version);
      m.message(MODEL_OPSET, o);
    }
    return m.finish();
  }
}

function decodeNode(buf: Uint8Array): OnnxNode {
  const node: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [] };
  for (const f of readFields(buf)) {
    if (f.field === NODE.input) node.inputs.push(str(f));
    else if (f.field === NODE.output) node.outputs.push(str(f));
    else if (f.field === NODE.name) node.name = str(f);
    else if (f.field === NODE.opType) node.opType = str(f);
    else if (f.field === NODE.domain) node.domain = str(f);
    else if (f.field === NODE.attribute) node.attributes.push(f.bytes!);
  }
  return node;
}

function encodeNode(n: OnnxNode): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(NODE.input, i);
  for (const o of n.outputs) w.string(NODE.output, o);
  if (n.name) w.string(NODE.name, n.name);
  w.string(NODE.opType, n.opType);
  for (const a of n.attributes) w.bytes(NODE.attribute, a);
  if (n.domain) w.string(NODE.domain, n.domain);
  return w;
}

function decodeValueInfo(buf: Uint8Array): ValueInfo {
  const info: ValueInfo = { name: '', elemType: 0 };
  for (const f of readFields(buf)) {
    if (f.field === 1) info.name = str(f);
    else if (f.field === 2) {
      const tensorType = readFields(f.bytes!).find((x) => x.field === 1);
      if (!tensorType) continue;
      for (const t of readFields(tensorType.bytes!)) {
        if (t.field === 1) info.elemType = Number(t.int);
        else if (t.field === 2) {
          info.shape = readFields(t.bytes!)
            .filter((d) => d.field === 1)
            .map((d) => {
              const parts = readFields(d.bytes!);
              const value = parts.find((p) => p.field === 1);
              const param = parts.find((p) => p.field === 2);
              return value ? Number(value.int) : param ? str(param) : '?';
            });
        }
      }
    }
  }
  return info;
}

function encodeValueInfo(v: ValueInfo): Writer {
  const tensor = new Writer().int(1, v.elemType);
  if (v.shape) {
    const shape = new Writer();
    for (const d of v.shape) {
      const dim = new Writer();
      if (typeof d === 'number') dim.int(1, d);
      else dim.string(2, d);
      shape.message(1, dim);
    }
    tensor.message(2, shape);
  }
  return new Writer().string(1, v.name).message(2, new Writer().message(1, tensor));
}

function tensorName(buf: Uint8Array): string {
  const f = readFields(buf).find((x) => x.field === TENSOR.name);
  return f ? str(f) : '';
}

export function encodeTensor(name: string, data: Float32Array | BigInt64Array | Int32Array, dims: number[]): Uint8Array {
  const dataType = data instanceof Float32Array ? DataType.FLOAT : data instanceof BigInt64Array ? DataType.INT64 : DataType.INT32;
  // raw_data is little-endian, which is what typed arrays hold on every platform Node supports
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Writer().packedInts(TENSOR.dims, dims).int(TENSOR.dataType, dataType).string(TENSOR.name, name).bytes(TENSOR.rawData, raw).finish();
}

/** A copy in memory of its own, aligned (Buffer's slice() is a view into the whole file's memory, not a copy). */
const own = (bytes: Uint8Array): Uint8Array => Uint8Array.prototype.slice.call(bytes);

/** Reads a float32/int64 initializer's values (raw_data or typed fields). */
export function decodeTensor(bytes: Uint8Array): { dims: number[]; dataType: number; data: Float32Array | BigInt64Array } {
  const fields = readFields(bytes);
  const dims = int64s(fields, TENSOR.dims).map(Number);
  const dataType = Number(fields.find((f) => f.field === TENSOR.dataType)?.int ?? 0);
  const raw = fields.find((f) => f.field === TENSOR.rawData)?.bytes;
  const count = dims.reduce((a, b) => a * b, 1);
  if (dataType === DataType.FLOAT) {
    if (raw) return { dims, dataType, data: new Float32Array(own(raw).buffer, 0, count) };
    const packed = fields.filter((f) => f.field === TENSOR.floatData);
    const out: number[] = [];
    for (const f of packed) {
      if (f.wire === 5) out.push(new DataView(f.bytes!.buffer, f.bytes!.byteOffset, 4).getFloat32(0, true));
      else {
        const dv = new DataView(f.bytes!.buffer, f.bytes!.byteOffset, f.bytes!.byteLength);
        for (let i = 0; i < f.bytes!.byteLength; i += 4) out.push(dv.getFloat32(i, true));
      }
    }
    return { dims, dataType, data: Float32Array.from(out) };
  }
  if (dataType === DataType.INT64) {
    if (raw) return { dims, dataType, data: new BigInt64Array(own(raw).buffer, 0, count) };
    return { dims, dataType, data: BigInt64Array.from(int64s(fields, TENSOR.int64Data)) };
  }
  throw new Error(`unsupported initializer data type ${dataType}`);
}

export type Attr =
  | { name: string; int: number }
  | { name: string; float: number }
  | { name: string; ints: number[] }
  | { name: string; string: string };

// AttributeProto: name=1, f=2, i=3, s=4, ints=8, type=20
function encodeAttr(a: Attr): Uint8Array {
  const w = new Writer().string(1, a.name);
  if ('int' in a) w.int(3, a.int).int(20, 2);
  else if ('float' in a) w.float(2, a.float).int(20, 1);
  else if ('ints' in a) w.packedInts(8, a.ints).int(20, 7);
  else w.string(4, a.string).int(20, 3);
  return w.finish();
}
