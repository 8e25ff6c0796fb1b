import { parseParamFlag, type Params, type SearchSpace } from './space.js';

/** A function with a known minimum, over a search space, for checking strategies (tests, bench:tune). */
export interface TestObjective {
  name: string;
  space: SearchSpace;
  minimum: number;
  fn: (p: Params) => number;
}

const space = (...flags: string[]): SearchSpace => ({ params: flags.map(parseParamFlag) });

/** Branin-Hoo on [-5, 10] x [0, 15]: three global minima of 0.397887. */
export const branin: TestObjective = {
  name: 'branin',
  space: space('x1=uniform:-5:10', 'x2=uniform:0:15'),
  minimum: 0.397887,
  fn: (p) => {
    const x1 = p.x1 as number;
    const x2 = p.x2 as number;
    const b = 5.1 / (4 * Math.PI ** 2);
    const c = 5 / Math.PI;
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * Math.PI)) * Math.cos(x1) + 10;
  },
};

const BATCH_PENALTY: Record<number, number> = { 32: 0.6, 64: 0.25, 128: 0, 256: 0.3, 512: 0.8 };

/**
 * A tuning-shaped function: a quadratic bowl in log10(lr) centred on 3e-3, a batch-size penalty
 * (best 128), a bonus for the mlp head, and a shallow optimum in weight decay (log scale). Minimum 0.
 */
export const tuningBowl: TestObjective = {
  name: 'lr-bowl',
  space: space('lr=loguniform:1e-5:1', 'batch_size=choice:32,64,128,256,512', 'head=choice:linear,mlp', 'weight_decay=loguniform:1e-6:1e-1'),
  minimum: 0,
  fn: (p) => {
    const lr = Math.log10(p.lr as number) - Math.log10(3e-3);
    const wd = Math.log10(p.weight_decay as number) + 4;
    return lr * lr + BATCH_PENALTY[p.batch_size as number]! + (p.head === 'mlp' ? 0 : 0.5) + 0.1 * wd * wd;
  },
};

const H6_ALPHA = [1.0, 1.2, 3.0, 3.2];
const H6_A = [
  [10, 3, 17, 3.5, 1.7, 8],
  [0.05, 10, 17, 0.1, 8, 14],
  [3, 3.5, 1.7, 10, 17, 8],
  [17, 8, 0.05, 10, 0.1, 14],
];
const H6_P = [
  [1312, 1696, 5569, 124, 8283, 5886],
  [2329, 4135, 8307, 3736, 1004, 9991],
  [2348, 1451, 3522, 2883, 3047, 6650],
  [4047, 8828, 8732, 5743, 1091, 381],
].map((r) => r.map((x) => x * 1e-4));

/** Hartmann 6-D on [0, 1]^6: minimum -3.32237. */
export const hartmann6: TestObjective = {
  name: 'hartmann6',
  space: space(...Array.from({ length: 6 }, (_, i) => `x${i + 1}=uniform:0:1`)),
  minimum: -3.32237,
  fn: (p) => {
    const x = Array.from({ length: 6 }, (_, i) => p[`x${i + 1}`] as number);
    let s = 0;
    for (let i = 0; i < 4; i++) s -= H6_ALPHA[i]! * Math.exp(-x.reduce((a, xj, j) => a + H6_A[i]![j]! * (xj - H6_P[i]![j]!) ** 2, 0));
    return s;
  },
};

export const TEST_OBJECTIVES: TestObjective[] = [branin, tuningBowl, hartmann6];
