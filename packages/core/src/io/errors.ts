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

/** A user-controlled string made safe to print: JSON-escaped (no raw ANSI or newlines) and truncated. */
export function quote(value: unknown, limit = 120): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > limit ? `${text.slice(0, limit)}…(${text.length} characters)` : text;
}
