/**
 * Writes a ResNet (v1.5 bottleneck) ONNX graph with seeded random weights: the real
 * architecture and FLOPs of the seeds' ResNet50, for throughput benchmarks where the
 * pretrained file cannot be downloaded. Accuracy is meaningless; speed is representative.
 *
 *   node --import tsx bench/models/resnet.ts OUT.onnx [--depth 50] [--width 64] [--size 224]
 */
import { writeFileSync } from 'node:fs';
import { Rng } from '../../src/core/index.js';
import { GraphBuilder, OnnxModel } from '../../src/onnx/index.js';

const BLOCKS: Record<number, number[]> = { 18: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3] };

export function buildResnet(opts: { depth?: number; width?: number; classes?: number; seed?: number } = {}): Uint8Array {
  const depth = opts.depth ?? 50;
  const width = opts.width ?? 64;
  const classes = opts.classes ?? 1000;
  const rng = new Rng(opts.seed ?? 1);
  const g = new GraphBuilder(OnnxModel.create(13));
  let n = 0;
  // batch-norm is folded into conv weights and biases, as exporters do for inference graphs
  const conv = (x: string, cin: number, cout: number, k: number, stride: number, gain = 1): string => {
    const w = new Float32Array(cout * cin * k * k);
    const std = gain * Math.sqrt(2 / (cin * k * k));
    for (let i = 0; i < w.length; i++) w[i] = rng.normal() * std;
    const id = n++;
    const pad = Math.floor(k / 2);
    return g.op('Conv', [x, g.weight(`conv${id}_w`, w, [cout, cin, k, k]), g.weight(`conv${id}_b`, new Float32Array(cout), [cout])], [
      { name: 'kernel_shape', ints: [k, k] },
      { name: 'strides', ints: [stride, stride] },
      { name: 'pads', ints: [pad, pad, pad, pad] },
    ]);
  };
  const relu = (x: string) => g.op('Relu', [x]);
  const x = g.input('input', ['N', 3, 224, 224]);
  let h = g.op('MaxPool', [relu(conv(x, 3, width, 7, 2))], [
    { name: 'kernel_shape', ints: [3, 3] },
    { name: 'strides', ints: [2, 2] },
    { name: 'pads', ints: [1, 1, 1, 1] },
  ]);
  let cin = width;
  const bottleneck = depth >= 50;
  const expansion = bottleneck ? 4 : 1;
  BLOCKS[depth]!.forEach((count, stage) => {
    const mid = width * 2 ** stage;
    const cout = mid * expansion;
    for (let b = 0; b < count; b++) {
      const stride = b === 0 && stage > 0 ? 2 : 1;
      const shortcut = b === 0 && (stride !== 1 || cin !== cout) ? conv(h, cin, cout, 1, stride) : h;
      // a small gain on the last conv keeps activations bounded through the residual sum
      const body = bottleneck
        ? conv(relu(conv(relu(conv(h, cin, mid, 1, 1)), mid, mid, 3, stride)), mid, cout, 1, 1, 0.2)
        : conv(relu(conv(h, cin, mid, 3, stride)), mid, cout, 3, 1, 0.2);
      h = relu(g.add(body, shortcut));
      cin = cout;
    }
  });
  const pooled = g.op('Flatten', [g.op('GlobalAveragePool', [h])]);
  const fc = new Float32Array(cin * classes);
  for (let i = 0; i < fc.length; i++) fc[i] = rng.normal() * Math.sqrt(1 / cin);
  g.output(g.op('Gemm', [pooled, g.weight('fc_w', fc, [cin, classes]), g.weight('fc_b', new Float32Array(classes), [classes])]), 'output');
  return g.model.serialize();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const flag = (name: string, d: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : d;
  };
  const out = args[0];
  if (!out || out.startsWith('--')) {
    console.error('usage: node --import tsx bench/models/resnet.ts OUT.onnx [--depth 18|50|101] [--width 64]');
    process.exit(2);
  }
  const bytes = buildResnet({ depth: flag('--depth', 50), width: flag('--width', 64) });
  writeFileSync(out, bytes);
  console.log(`wrote ${out}: ${(bytes.length / 1e6).toFixed(1)} MB`);
}
