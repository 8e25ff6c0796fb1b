import * as ort from 'onnxruntime-node';
import { buildResnet } from './bench/models/resnet.ts';
import { toFloat16 } from './src/onnx/float16.ts';
const g = buildResnet({ depth: 18, width: 16 });
const h = toFloat16(g);
console.log(g.length, h.length);
const x = new ort.Tensor('float32', Float32Array.from({ length: 2 * 3 * 224 * 224 }, (_, i) => Math.sin(i)), [2, 3, 224, 224]);
const a = await (await ort.InferenceSession.create(g)).run({ input: x });
try {
  const t = performance.now();
  const s = await ort.InferenceSession.create(h);
  const b = await s.run({ input: x });
  const A = Object.values(a)[0]!.data as Float32Array, B = Object.values(b)[0]!.data as Float32Array;
  let md = 0, mx = 0; for (let i = 0; i < A.length; i++) { md = Math.max(md, Math.abs(A[i]! - B[i]!)); mx = Math.max(mx, Math.abs(A[i]!)); }
  console.log('fp16 on cpu ran', md, mx, performance.now() - t, Object.keys(b));
} catch (e) { console.log('fp16 cpu failed:', String(e).slice(0, 300)); }
