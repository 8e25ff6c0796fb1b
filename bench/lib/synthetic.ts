import { Rng } from '../../src/core/index.js';

export interface LabelledMatrix {
  data: Float32Array;
  rows: number;
  cols: number;
  labels: Int32Array;
}

/**
 * Gaussian-cluster features: one random centre per class, rows = centre * separation + unit
 * noise, labels cycling through the classes. Deterministic by seed; a stand-in for backbone
 * features of the same shape when only the head's speed matters.
 */
export function gaussianClusters(rows: number, cols: number, classes: number, opts: { seed: number; separation?: number; centresSeed?: number }): LabelledMatrix {
  const centresRng = new Rng(opts.centresSeed ?? opts.seed);
  const centres = Array.from({ length: classes }, () => Float32Array.from({ length: cols }, () => centresRng.normal()));
  const rng = new Rng(opts.seed);
  const sep = opts.separation ?? 0.3;
  const data = new Float32Array(rows * cols);
  const labels = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const c = r % classes;
    labels[r] = c;
    const centre = centres[c]!;
    for (let d = 0; d < cols; d++) data[r * cols + d] = centre[d]! * sep + rng.normal();
  }
  return { data, rows, cols, labels };
}
