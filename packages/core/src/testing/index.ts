export { gradcheck, type GradcheckResult } from './gradcheck.ts';
export { allClose, maxAbsDiff, maxMaskedDiff } from './assert.ts';
