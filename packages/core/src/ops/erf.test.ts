import test from 'ava';
import { erf } from './erf.ts';

// Reference values from mpmath / Abramowitz & Stegun table 7.1.
const cases: Array<[number, number]> = [
  [0, 0],
  [0.1, 0.1124629160182849],
  [0.5, 0.5204998778130465],
  [1, 0.8427007929497149],
  [2, 0.9953222650189527],
  [2.5, 0.999593047982555],
  [3, 0.9999779095030014],
  [4.5, 0.9999999998033839],
  [-1.3, -0.9340079449406524],
];

test('erf matches reference values to double precision', (t) => {
  for (const [x, expected] of cases) t.true(Math.abs(erf(x) - expected) < 1e-15, `erf(${x}) = ${erf(x)}, expected ${expected}`);
});
