/** The middle value; for an even count, the mean of the two middle ones. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Indices of the k largest scores, best first, ties broken by the lower index: one pass keeping
 * a sorted list of k (k is small; a request would otherwise sort all classes, 1,000 for ImageNet).
 */
export function topIndices(scores: Float32Array, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (top.length === k && !(s > scores[top[k - 1]!]!)) continue;
    let j = top.length === k ? k - 1 : top.length;
    while (j > 0 && s > scores[top[j - 1]!]!) j--;
    top.splice(j, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}
