/**
 * Choosing the next token from one row of logits, as transformers' generate
 * does: greedy argmax (first maximum), or temperature → top-k → top-p, then a
 * draw from the softmax with a seeded generator.
 */
import type { Generator } from '@lorakit/core';

export interface SamplingOptions {
  temperature: number;
  topK: number | null;
  topP: number | null;
  generator: Generator;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export function sample(row: ArrayLike<number>, { temperature, topK, topP, generator }: SamplingOptions): number {
  const scores = Float64Array.from(row, (v) => v / temperature);
  if (topK !== null && topK < scores.length) {
    const kth = [...scores].sort((a, b) => b - a)[topK - 1];
    scores.forEach((v, i) => { if (v < kth) scores[i] = -Infinity; });
  }
  const max = scores.reduce((m, v) => Math.max(m, v), -Infinity);
  const probs = scores.map((v) => Math.exp(v - max));
  const total = probs.reduce((a, b) => a + b, 0);
  probs.forEach((p, i) => (probs[i] = p / total));
  if (topP !== null && topP < 1) {
    // Drop the least likely tokens whose total is at most 1 − topP; keep at least one.
    const ascending = [...probs.keys()].sort((a, b) => probs[a] - probs[b]);
    let cumulative = 0;
    for (const i of ascending.slice(0, -1)) {
      cumulative += probs[i];
      if (cumulative > 1 - topP) break;
      probs[i] = 0;
    }
  }
  const kept = probs.reduce((a, b) => a + b, 0);
  let u = generator.uniform() * kept;
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i];
    if (u < 0 && probs[i] > 0) return i;
  }
  return argmax(probs);
}
