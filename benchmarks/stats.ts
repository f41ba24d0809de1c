/** Timing helpers: warm up, repeat, report the median. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Median milliseconds of `fn` over `reps` runs after `warmup` runs. */
export function timeMs(fn: () => void, { warmup = 2, reps = 7 } = {}): number {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  return median(times);
}

/**
 * Median milliseconds of each function, run alternately (a, b, a, b, ...) so
 * that a noisy, shared machine slows both sides alike.
 */
export function timeAlternating(fns: Array<() => void>, { warmup = 2, reps = 7 } = {}): number[] {
  for (let i = 0; i < warmup; i++) fns.forEach((fn) => fn());
  const times = fns.map(() => [] as number[]);
  for (let i = 0; i < reps; i++) {
    fns.forEach((fn, k) => {
      const start = performance.now();
      fn();
      times[k].push(performance.now() - start);
    });
  }
  return times.map(median);
}
