/**
 * The error function to double precision, for exact GELU.
 * |x| < 2.5: Maclaurin series; beyond: erfc by its continued fraction
 * (modified Lentz), where the series would lose digits to cancellation.
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126;

export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) return erfSeries(x);
  if (ax > 6) return Math.sign(x);
  const result = 1 - erfcContinuedFraction(ax);
  return x < 0 ? -result : result;
}

function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 100; n++) {
    term *= -x2 / n;
    const contribution = term / (2 * n + 1);
    sum += contribution;
    if (Math.abs(contribution) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

/** erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) for x > 0. */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d;
    c = x + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}
