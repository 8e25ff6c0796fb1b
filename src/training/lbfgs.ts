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

const dot = (a: Float64Array | Float32Array, b: Float64Array | Float32Array): number => {
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
  // correction pairs, oldest first, in float32 (half the memory traffic: the two-loop recursion is
  // bound by it, and the pairs come from float32 gradients); the pair dropped when the memory is
  // full becomes the spare
  const s: Float32Array[] = [];
  const y: Float32Array[] = [];
  const rho: number[] = [];
  let spare: { s: Float32Array; y: Float32Array } = { s: new Float32Array(n), y: new Float32Array(n) };
  const d = new Float64Array(n);
  const alpha = new Float64Array(m);
  let xNext = new Float64Array(n);
  const trace: LbfgsResult['trace'] = [];
  let gradNorm = Math.sqrt(dot(grad, grad));
  let iterations = 0;
  while (gradNorm > opts.gradTol && iterations < opts.maxIterations) {
    const slope = direction(d, grad, s, y, rho, alpha, gradNorm);
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
      } else spare = { s: new Float32Array(n), y: new Float32Array(n) };
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

/**
 * The search direction d = -H g by the two-loop recursion (Nocedal and Wright, algorithm 7.4),
 * each dot product taken in the same pass as the update before it: 2k + 1 passes over the vectors
 * instead of 4k + 3. Returns the slope g.d; where descent is lost (numerical noise) the pairs are
 * dropped and d is the steepest descent of unit length.
 */
function direction(d: Float64Array, grad: Float64Array, s: Float32Array[], y: Float32Array[], rho: number[], alpha: Float64Array, gradNorm: number): number {
  const n = d.length;
  const k = s.length;
  if (k === 0) {
    const scale = -1 / Math.max(gradNorm, 1e-12);
    let slope = 0;
    for (let j = 0; j < n; j++) {
      d[j] = grad[j]! * scale;
      slope += grad[j]! * d[j]!;
    }
    return slope;
  }
  // first loop, newest pair to oldest: alpha_i = rho_i s_i.d, then d -= alpha_i y_i
  let sd = 0;
  const newest = s[k - 1]!;
  for (let j = 0; j < n; j++) {
    d[j] = -grad[j]!;
    sd += newest[j]! * d[j]!;
  }
  for (let i = k - 1; i >= 1; i--) {
    const a = (alpha[i] = rho[i]! * sd);
    const yi = y[i]!;
    const older = s[i - 1]!;
    sd = 0;
    for (let j = 0; j < n; j++) {
      const v = (d[j]! -= a * yi[j]!);
      sd += older[j]! * v;
    }
  }
  alpha[0] = rho[0]! * sd;
  // d scaled by gamma = s.y / y.y of the newest pair, as the oldest pair's update ends; y_0.d in the same pass
  const yNew = y[k - 1]!;
  const gamma = 1 / rho[k - 1]! / dot(yNew, yNew);
  const a0 = alpha[0]!;
  const y0 = y[0]!;
  let yd = 0;
  for (let j = 0; j < n; j++) {
    const v = (d[j] = (d[j]! - a0 * y0[j]!) * gamma);
    yd += y0[j]! * v;
  }
  // second loop, oldest pair to newest: d += (alpha_i - rho_i y_i.d) s_i, y_{i+1}.d (or g.d) in the same pass
  for (let i = 0; i < k; i++) {
    const c = alpha[i]! - rho[i]! * yd;
    const si = s[i]!;
    const after = i + 1 < k ? y[i + 1]! : grad;
    yd = 0;
    for (let j = 0; j < n; j++) {
      const v = (d[j]! += c * si[j]!);
      yd += after[j]! * v;
    }
  }
  if (yd < 0) return yd;
  // lost descent (numerical noise): restart from steepest descent
  s.length = y.length = rho.length = 0;
  return direction(d, grad, s, y, rho, alpha, gradNorm);
}
