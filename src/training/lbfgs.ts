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

/**
 * The smallest decrease, relative to the loss, that a float32 loss can show: a mean of thousands
 * of float32 terms moves by about 1e-6 of itself between evaluations at the same optimum
 * (measured on 6,680 x 1,280 features). A step whose first-order decrease is below it cannot be
 * told from noise, so the line search stops there instead of halving the step 30 times, an
 * evaluation each.
 */
const LOSS_RESOLUTION = 1e-6;

const dot = (a: Float64Array, b: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/**
 * Minimises f from x0 with two-loop-recursion L-BFGS and a backtracking Armijo line search.
 * A line search that cannot decrease the loss any more (float32 noise at the optimum) ends it,
 * as does a step too short to show a decrease above that noise.
 * Its vectors are allocated once and reused: a head's are ~300k long, and on the virtual machines
 * measured, writing fresh pages cost more than the arithmetic.
 */
export async function lbfgs(f: Objective, x0: Float64Array, opts: LbfgsOptions): Promise<LbfgsResult> {
  const m = opts.memory ?? 10;
  const n = x0.length;
  let x = Float64Array.from(x0);
  let { loss, grad } = await f(x);
  let evaluations = 1;
  // correction pairs, oldest first; the pair dropped when the memory is full becomes the spare
  const s: Float64Array[] = [];
  const y: Float64Array[] = [];
  const rho: number[] = [];
  let spare: { s: Float64Array; y: Float64Array } = { s: new Float64Array(n), y: new Float64Array(n) };
  const d = new Float64Array(n);
  const alpha = new Float64Array(m);
  let xNext = new Float64Array(n);
  const trace: LbfgsResult['trace'] = [];
  let gradNorm = Math.sqrt(dot(grad, grad));
  let iterations = 0;
  while (gradNorm > opts.gradTol && iterations < opts.maxIterations) {
    // two-loop recursion: d = -H g
    for (let j = 0; j < n; j++) d[j] = -grad[j]!;
    for (let i = s.length - 1; i >= 0; i--) {
      alpha[i] = rho[i]! * dot(s[i]!, d);
      const yi = y[i]!;
      const a = alpha[i]!;
      for (let j = 0; j < n; j++) d[j]! -= a * yi[j]!;
    }
    const gamma = s.length ? dot(s.at(-1)!, y.at(-1)!) / dot(y.at(-1)!, y.at(-1)!) : 1 / Math.max(gradNorm, 1e-12);
    for (let j = 0; j < n; j++) d[j]! *= gamma;
    for (let i = 0; i < s.length; i++) {
      const c = alpha[i]! - rho[i]! * dot(y[i]!, d);
      const si = s[i]!;
      for (let j = 0; j < n; j++) d[j]! += c * si[j]!;
    }
    let slope = dot(grad, d);
    if (slope >= 0) {
      // lost descent (numerical noise): restart from steepest descent
      s.length = y.length = rho.length = 0;
      for (let j = 0; j < n; j++) d[j] = -grad[j]! / Math.max(gradNorm, 1e-12);
      slope = dot(grad, d);
    }
    let step = 1;
    let next: { loss: number; grad: Float64Array } | undefined;
    const floor = LOSS_RESOLUTION * Math.abs(loss);
    for (let tries = 0; tries < 30 && -step * slope > floor; tries++) {
      for (let j = 0; j < n; j++) xNext[j] = x[j]! + step * d[j]!;
      const r = await f(xNext);
      evaluations++;
      if (r.loss <= loss + 1e-4 * step * slope) {
        next = r;
        break;
      }
      step *= 0.5;
    }
    if (!next) break;
    const { s: sk, y: yk } = spare;
    let sy = 0;
    for (let j = 0; j < n; j++) {
      sk[j] = xNext[j]! - x[j]!;
      yk[j] = next.grad[j]! - grad[j]!;
      sy += sk[j]! * yk[j]!;
    }
    if (sy > 1e-12) {
      if (s.length === m) {
        spare = { s: s.shift()!, y: y.shift()! };
        rho.shift();
      } else spare = { s: new Float64Array(n), y: new Float64Array(n) };
      s.push(sk);
      y.push(yk);
      rho.push(1 / sy);
    }
    const improvement = loss - next.loss;
    [x, xNext] = [xNext, x];
    loss = next.loss;
    grad = next.grad;
    gradNorm = Math.sqrt(dot(grad, grad));
    iterations++;
    trace.push({ loss, gradNorm });
    if (improvement <= 1e-9 * Math.max(1, Math.abs(loss))) break;
  }
  return { x, loss, gradNorm, iterations, evaluations, trace };
}
