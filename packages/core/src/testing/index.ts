export { gradcheck, type GradcheckResult } from './gradcheck.ts';
export { allClose, maxAbsDiff, maxMaskedDiff, relativeErrorOf } from './assert.ts';
export { fixtureWithTokenizer } from './fixtures.ts';
export { ggmlGelu, useGgmlGelu } from './ggml.ts';
