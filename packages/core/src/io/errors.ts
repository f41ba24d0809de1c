/**
 * Errors about files users hand us: a stable code, the file, and a message
 * whose user-controlled parts (tensor names, values) are escaped and cut short.
 */
export class FileFormatError extends Error {
  constructor(readonly code: string, readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = code;
  }
}

/**
 * A user-controlled value made safe to print, and the one place that decides how a value looks in a
 * message: a string with its quotes, JSON-escaped (no raw ANSI or newlines), so "8" differs from 8;
 * a number as written, NaN and ±Infinity included (JSON.stringify would say null), a JsonNumber as its
 * source text; arrays and plain objects in JSON's notation with the same rules inside; anything else
 * as its String(). Cut at `limit` characters.
 *
 *   quote('a\nb')        // "a\nb"
 *   quote(NaN)           // NaN
 *   quote([1, '8', -Infinity])  // [1,"8",-Infinity]
 */
export function quote(value: unknown, limit = 120): string {
  const text = shown(value, new Set());
  return text.length > limit ? `${text.slice(0, limit)}…(${text.length} characters)` : text;
}

function shown(value: unknown, open: Set<object>): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value !== 'object' || value === null || !(Array.isArray(value) || isPlain(value))) return String(value);
  if (open.has(value)) return '[circular]';
  open.add(value);
  const text = Array.isArray(value)
    ? `[${value.map((v) => shown(v, open)).join(',')}]`
    : `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${shown(v, open)}`).join(',')}}`;
  open.delete(value);
  return text;
}

const isPlain = (value: object) => [Object.prototype, null].includes(Object.getPrototypeOf(value));
