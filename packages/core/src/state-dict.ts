/**
 * Loading a state dict into a module's tensors: every missing, unexpected and
 * shape-mismatched key is gathered, and strict mode throws once with them all.
 */
import type { Tensor } from './tensor.ts';
import { formatShape, sameShape } from './shape.ts';

export interface LoadOptions {
  strict?: boolean;
}

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** Copy values into `target` in place, converting float precision if needed. */
export function copyInto(target: Tensor, source: Tensor): void {
  if (target.isFloat !== source.isFloat) throw new Error(`cannot copy a ${source.dtype} tensor into a ${target.dtype} one`);
  if (source.dtype === target.dtype) (target.data as Float32Array).set(source.data as Float32Array);
  else (target.data as Float32Array).set(Array.from(source.data as ArrayLike<number>));
}

const MAX_LISTED = 20;

function listing(label: string, keys: string[]): string {
  const shown = keys.slice(0, MAX_LISTED).map((k) => `    ${k}`).join('\n');
  const more = keys.length > MAX_LISTED ? `\n    ... and ${keys.length - MAX_LISTED} more` : '';
  return `  ${label} (${keys.length}):\n${shown}${more}`;
}

export function loadStateDict(own: Map<string, Tensor>, source: Map<string, Tensor> | Record<string, Tensor>, { strict = true }: LoadOptions = {}): LoadResult {
  const entries = source instanceof Map ? source : new Map(Object.entries(source));
  const missingKeys = [...own.keys()].filter((k) => !entries.has(k));
  const unexpectedKeys = [...entries.keys()].filter((k) => !own.has(k));
  const mismatched: string[] = [];
  for (const [key, target] of own) {
    const value = entries.get(key);
    if (value !== undefined && !sameShape(value.shape, target.shape)) {
      mismatched.push(`${key}: checkpoint ${formatShape(value.shape)}, model ${formatShape(target.shape)}`);
    }
  }
  const problems = [
    missingKeys.length ? listing('missing keys', missingKeys) : '',
    strict && unexpectedKeys.length ? listing('unexpected keys', unexpectedKeys) : '',
    mismatched.length ? listing('shape mismatches', mismatched) : '',
  ].filter(Boolean);
  if (mismatched.length || (strict && problems.length)) throw new Error(`loadStateDict:\n${problems.join('\n')}`);
  for (const [key, target] of own) {
    const value = entries.get(key);
    if (value !== undefined) copyInto(target, value);
  }
  return { missingKeys, unexpectedKeys };
}
