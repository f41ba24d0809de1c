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

/** A positive integer flag, or a usage error naming it. */
export function positiveInteger(name: string, value: unknown): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

export function positiveNumber(name: string, value: unknown): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

/** "0-3,8" -> [0, 1, 2, 3, 8] */
export function layerList(value: string): number[] {
  const layers = value.split(',').flatMap((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) throw new UsageError(`--layers takes numbers and ranges like 0-3,8, got ${JSON.stringify(value)}`);
    const [from, to] = [Number(m[1]), Number(m[2] ?? m[1])];
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
  return [...new Set(layers)].sort((a, b) => a - b);
}

/** "5GB", "500MB", "2000000" -> bytes */
export function byteSize(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i.exec(value);
  if (!m) throw new UsageError(`--max-shard-size takes a size like 5GB or 500MB, got ${JSON.stringify(value)}`);
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };
  return Math.round(Number(m[1]) * units[(m[2] ?? 'b').toLowerCase()]);
}
