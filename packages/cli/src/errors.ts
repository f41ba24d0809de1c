import { quote } from '@lorakit/core/io';

/** How the command reports failures: the message (its first lines), exit code 1, the stack only with --verbose. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function reportError(error: unknown, verbose: boolean): never {
  const lines = (error instanceof Error ? error.message : String(error)).split('\n');
  const shown = verbose ? lines : lines.slice(0, 5);
  process.stderr.write(`lora: ${shown.join('\n')}\n`);
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  else if (shown.length < lines.length) process.stderr.write(`  ... (--verbose shows all ${lines.length} lines)\n`);
  else if (!(error instanceof UsageError)) process.stderr.write('(run with --verbose for details)\n');
  process.exit(1);
}

/**
 * The text last given for --name on the command line (`--name V` or `--name=V`), or undefined. yargs
 * hands number flags over already converted (abc and NaN both arrive as NaN), so messages use this to
 * show what was written.
 */
export function writtenFlag(argv: readonly string[], name: string): string | undefined {
  const forms = [name, name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase())];
  let text: string | undefined;
  for (let i = 0; i < argv.length && argv[i] !== '--'; i++) {
    for (const form of forms) {
      if (argv[i] === `--${form}`) text = argv[i + 1] === undefined || /^--?[^\d.]/.test(argv[i + 1]) ? '' : argv[i + 1];
      else if (argv[i].startsWith(`--${form}=`)) text = argv[i].slice(form.length + 3);
    }
  }
  return text;
}

const NUMBER_TEXT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Infinity|NaN)$/;

/** A number flag's value in a message: the number (NaN and Infinity as written), or the text with its quotes when it was not a number. */
export function shownFlag(value: unknown, written: string | undefined): string {
  if (value === undefined && !written) return 'nothing';
  return quote(written !== undefined && !NUMBER_TEXT.test(written.trim()) ? written : value);
}

/** A flag given once, with a value: yargs gathers a repeated flag into an array, and puts the default in for a missing value. */
export function single(name: string, value: unknown, written?: string): unknown {
  if (Array.isArray(value)) throw new UsageError(`--${name} was given ${value.length} times; give it once`);
  if (written === '') throw new UsageError(`--${name} needs a value`);
  return value;
}

/** A positive integer flag, or a usage error naming it. */
export function positiveInteger(name: string, value: unknown, written?: string): number {
  const n = Number(single(name, value, written));
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got ${shownFlag(value, written)}`);
  return n;
}

export function positiveNumber(name: string, value: unknown, written?: string): number {
  const n = Number(single(name, value, written));
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${shownFlag(value, written)}`);
  return n;
}

export function nonNegativeNumber(name: string, value: unknown, written?: string): number {
  const n = Number(single(name, value, written));
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number >= 0, got ${shownFlag(value, written)}`);
  return n;
}

export function probability(name: string, value: unknown, written?: string): number {
  const n = nonNegativeNumber(name, value, written);
  if (n >= 1) throw new UsageError(`--${name} must be in [0, 1), got ${shownFlag(value, written)}`);
  return n;
}

/** A finite number given as text (each --weight), or a usage error naming the flag. */
export function finiteNumber(name: string, text: string): number {
  const n = NUMBER_TEXT.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a finite number, got ${shownFlag(n, text)}`);
  return n;
}

const MAX_LAYER = 99_999;

/** "0-3,8" -> [0, 1, 2, 3, 8] */
export function layerList(value: unknown): number[] {
  const text = single('layers', value);
  if (typeof text !== 'string') throw new UsageError(`--layers takes numbers and ranges like 0-3,8, got ${shownFlag(text, undefined)}`);
  const layers = text.split(',').flatMap((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) throw new UsageError(`--layers takes numbers and ranges like 0-3,8, got ${quote(text)}`);
    const [from, to] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (to < from) throw new UsageError(`--layers: the range ${from}-${to} is reversed; write ${to}-${from}`);
    if (to > MAX_LAYER) throw new UsageError(`--layers: layer ${quote(to)} is past the last layer of any model (at most ${MAX_LAYER})`);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
  return [...new Set(layers)].sort((a, b) => a - b);
}

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };

/** "5GB", "500MB", "2000000" -> bytes: at least one, and an exact integer */
export function byteSize(value: unknown): number {
  const text = single('max-shard-size', value);
  const m = typeof text !== 'string' ? null : /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`--max-shard-size takes a size like 5GB or 500MB, got ${quote(text)}`);
  const bytes = Math.round(Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]);
  if (bytes < 1) throw new UsageError(`--max-shard-size must be at least one byte, got ${quote(text)}`);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`--max-shard-size must be at most 2^53 bytes, got ${quote(text)}`);
  return bytes;
}
