import { gaussianClusters } from './bench/lib/synthetic.ts';
import { fitProbe } from './src/training/probe.ts';
const tr = gaussianClusters(6680, 1280, 133, { seed: 1, separation: 0.12 });
const va = gaussianClusters(835, 1280, 133, { seed: 2, centresSeed: 1, separation: 0.12 });
for (const v of [tr, va]) for (let i = 0; i < v.data.length; i++) v.data[i] = Math.max(0, v.data[i]!);
const t = performance.now();
const r = await fitProbe(tr, tr.labels, va, va.labels, 133, { onProgress: (d, n, s) => console.log(d, n, s, ((performance.now() - t) / 1000).toFixed(2)) });
console.log(((performance.now() - t) / 1000).toFixed(2), 's', JSON.stringify({ ...r.choice, trace: r.choice.trace.length }));
