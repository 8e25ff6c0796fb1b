/** Limited-memory BFGS for smooth convex objectives whose loss and gradient come from elsewhere (an ORT graph). */

export interface LbfgsOptions {
  /** stop when the gradient's Euclidean norm is below this */
  gradTol: number;
  maxIterations: number;
  /** correction pairs kept */
  memory?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  loss: number;
  gradNorm: number;
  iterations: number;
  evaluations: number;
  /** loss and gradient norm after each iteration */
  trace: Array<{ loss: number; gradNorm: number }>;
}

export type Objective = (x: Float64Array) => Promise<{ loss: number; grad: Float64Array }>;

const dot = (a: Float64Array, b: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/**
 * Minimises f from x0 with two-loop-recursion L-BFGS and a backtracking Armijo line search.
 * A line search that cannot decrease the loss any more (float32 noise at the optimum) ends it.
 */
export async function lbfgs(f: Objective, x0: Float64Array, opts: LbfgsOptions): Promise<LbfgsResult> {
  const m = opts.memory ?? 10;
  let x = Float64Array.from(x0);
  let { loss, grad } = await f(x);
  let evaluations = 1;
  const s: Float64Array[] = [];
  const y: Float64Array[] = [];
  const rho: number[] = [];
  const trace: LbfgsResult['trace'] = [];
  let gradNorm = Math.sqrt(dot(grad, grad));
  let iterations = 0;
  while (gradNorm > opts.gradTol && iterations < opts.maxIterations) {
    // two-loop recursion: d = -H g
    const d = new Float64Array(grad.length);
    for (let j = 0; j < d.length; j++) d[j] = -grad[j]!;
    const alpha = new Float64Array(s.length);
    for (let i = s.length - 1; i >= 0; i--) {
      alpha[i] = rho[i]! * dot(s[i]!, d);
      const yi = y[i]!;
      for (let j = 0; j < d.length; j++) d[j]! -= alpha[i]! * yi[j]!;
    }
    const gamma = s.length ? dot(s.at(-1)!, y.at(-1)!) / dot(y.at(-1)!, y.at(-1)!) : 1 / Math.max(gradNorm, 1e-12);
    for (let j = 0; j < d.length; j++) d[j]! *= gamma;
    for (let i = 0; i < s.length; i++) {
      const beta = rho[i]! * dot(y[i]!, d);
      const si = s[i]!;
      for (let j = 0; j < d.length; j++) d[j]! += (alpha[i]! - beta) * si[j]!;
    }
    let slope = dot(grad, d);
    if (slope >= 0) {
      // lost descent (numerical noise): restart from steepest descent
      s.length = y.length = rho.length = 0;
      for (let j = 0; j < d.length; j++) d[j] = -grad[j]! / Math.max(gradNorm, 1e-12);
      slope = dot(grad, d);
    }
    let step = 1;
    let next: { loss: number; grad: Float64Array } | undefined;
    let xNext = x;
    for (let tries = 0; tries < 30; tries++) {
      xNext = new Float64Array(x.length);
      for (let j = 0; j < x.length; j++) xNext[j] = x[j]! + step * d[j]!;
      const r = await f(xNext);
      evaluations++;
      if (r.loss <= loss + 1e-4 * step * slope) {
        next = r;
        break;
      }
      step *= 0.5;
    }
    if (!next) break;
    const sk = new Float64Array(x.length);
    const yk = new Float64Array(x.length);
    for (let j = 0; j < x.length; j++) {
      sk[j] = xNext[j]! - x[j]!;
      yk[j] = next.grad[j]! - grad[j]!;
    }
    const sy = dot(sk, yk);
    if (sy > 1e-12) {
      if (s.length === m) {
        s.shift();
        y.shift();
        rho.shift();
      }
      s.push(sk);
      y.push(yk);
      rho.push(1 / sy);
    }
    const improvement = loss - next.loss;
    x = xNext;
    loss = next.loss;
    grad = next.grad;
    gradNorm = Math.sqrt(dot(grad, grad));
    iterations++;
    trace.push({ loss, gradNorm });
    if (improvement <= 1e-9 * Math.max(1, Math.abs(loss))) break;
  }
  return { x, loss, gradNorm, iterations, evaluations, trace };
}
