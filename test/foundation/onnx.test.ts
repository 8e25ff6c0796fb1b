import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { findFeatureTensor } from '../../src/backbones/graph.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { OnnxModel } from '../../src/onnx/model.ts';
import { Writer, readFields, int64s } from '../../src/onnx/proto.ts';
import { sharedDir } from '../helpers/paths.ts';

const mobilenet = () => readFileSync(path.join(sharedDir(), 'models/mobilenetv2-12-int8.onnx'));

test('protobuf writer and reader agree, including negative int64 and packed fields', () => {
  const bytes = new Writer().int(1, -5n).string(2, 'hé').packedInts(3, [1, 300, 70000]).int(3, 9).finish();
  const fields = readFields(bytes);
  assert.equal(BigInt.asIntN(64, fields[0]!.int!), -5n);
  assert.equal(new TextDecoder().decode(fields[1]!.bytes), 'hé');
  assert.deepEqual(int64s(fields, 3), [1n, 300n, 70000n, 9n]);
  assert.throws(() => readFields(Uint8Array.of(0x0a, 0x05, 1)), /truncated/);
});

test('an ONNX model survives parse and serialize and still runs the same', async () => {
  const original = mobilenet();
  const m = OnnxModel.parse(original);
  assert.equal(m.nodes.length, 73);
  const again = OnnxModel.parse(m.serialize());
  assert.deepEqual(again.nodes.map((n) => n.opType), m.nodes.map((n) => n.opType));
  assert.equal(again.initializers.length, m.initializers.length);
  const x = new ort.Tensor('float32', Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i)), [1, 3, 224, 224]);
  const a = await (await ort.InferenceSession.create(original)).run({ input: x });
  const b = await (await ort.InferenceSession.create(m.serialize())).run({ input: x });
  assert.deepEqual(a.output!.data, b.output!.data);
});

test('parsing a file that is not ONNX fails clearly', () => {
  assert.throws(() => OnnxModel.parse(Buffer.from('hello, this is text')), /not an ONNX model|protobuf/);
});

test('the feature tensor is found in an int8 graph (dequantized input of the quantized pool)', () => {
  const f = findFeatureTensor(OnnxModel.parse(mobilenet()));
  assert.equal(f.tensor, '627');
});

/** conv -> relu -> GlobalAveragePool -> Flatten -> Gemm, like ResNet's tail */
function tinyCnn(withPool: boolean): OnnxModel {
  const g = new GraphBuilder();
  const x = g.input('image', ['N', 3, 8, 8]);
  const w = g.weight('conv_w', Float32Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => Math.cos(i)), [4, 3, 3, 3]);
  const fmap = g.op('Relu', [g.op('Conv', [x, w], [{ name: 'pads', ints: [1, 1, 1, 1] }])], [], 'fmap');
  const flat = withPool ? g.op('Flatten', [g.op('GlobalAveragePool', [fmap])]) : g.op('Flatten', [fmap]);
  const cols = withPool ? 4 : 4 * 8 * 8;
  const fc = g.weight('fc_w', new Float32Array(cols * 5).fill(0.1), [cols, 5]);
  g.output(g.op('MatMul', [flat, fc]), 'logits');
  return g.model;
}

test('the feature tensor is the global pool input in a float graph, else the classifier input', () => {
  assert.equal(findFeatureTensor(tinyCnn(true)).tensor, 'fmap');
  const noPool = tinyCnn(false);
  const f = findFeatureTensor(noPool);
  assert.equal(noPool.producerOf(f.tensor)?.opType, 'Flatten');
});

test('a graph with neither a pool nor a classifier asks for --feature-tensor', () => {
  const g = new GraphBuilder();
  g.output(g.op('Relu', [g.input('x', [1, 3])]), 'y');
  assert.throws(() => findFeatureTensor(g.model), (e: Error & { hint?: string }) => /feature tensor/.test(e.message) && /--feature-tensor/.test(e.hint ?? ''));
});
