/**
 * A strict JSON parser for files users hand us (RFC 8259, nothing more).
 *
 * JSON.parse keeps the last of two duplicate keys, rounds integers above 2^53
 * and lets "__proto__" reach object prototypes. This parser rejects duplicate
 * keys, builds objects without prototypes, and in `exact` mode returns every
 * number as its source text (JsonNumber), so `8.0` and `8` differ and
 * 18446744073709551615 is never rounded.
 *
 *   parseStrictJson('{"a": 1}')                        // { a: 1 } (null prototype)
 *   parseStrictJson('[8.0]', { exact: true })[0].isInteger()  // false
 */
import { quote } from './errors.ts';

export class JsonNumber {
  constructor(readonly text: string) {}

  /** Written as an integer: no fraction, no exponent. */
  isInteger(): boolean {
    return /^-?\d+$/.test(this.text);
  }

  bigint(): bigint {
    return BigInt(this.text);
  }

  value(): number {
    return Number(this.text);
  }

  /** The source text, which is how quote() shows it in messages. */
  toString(): string {
    return this.text;
  }
}

export type JsonValue = null | boolean | string | number | JsonNumber | JsonValue[] | { [key: string]: JsonValue };

export class JsonSyntaxError extends Error {
  /** `depth` is the nesting level where the error was found (0 = the top object's keys). */
  constructor(message: string, readonly position: number, readonly depth = 0) {
    super(`${message} at character ${position}`);
  }
}

const BOM = 'starts with a byte order mark (BOM)';

/**
 * What is wrong with a file that starts with a UTF-8 byte order mark, or null: for every reader of
 * JSON or JSONL, given the decoded text or the first bytes (EF BB BF). Python's json refuses a BOM
 * ("Unexpected UTF-8 BOM"), so transformers and PEFT do too, and TextDecoder drops it silently
 * unless asked not to: a reader names it instead of calling it an unexpected character.
 *
 *   bomProblem(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b]))  // 'starts with a byte order mark (BOM); ...'
 */
export function bomProblem(start: string | Uint8Array): string | null {
  const bom = typeof start === 'string' ? start.startsWith('\ufeff') : start[0] === 0xef && start[1] === 0xbb && start[2] === 0xbf;
  return bom ? `${BOM}; save it as UTF-8 without one` : null;
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
/** The characters a string copies as they are: all but the quote, the backslash and control characters. */
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

export interface StrictJsonOptions {
  /** Return numbers as JsonNumber (source text) instead of JS numbers. */
  exact?: boolean;
  /** Deepest nesting accepted (arrays and objects). */
  maxDepth?: number;
}

class Parser {
  #at = 0;

  constructor(readonly text: string, readonly exact: boolean, readonly maxDepth: number) {}

  parseDocument(): JsonValue {
    if (bomProblem(this.text) !== null) this.#fail(BOM);
    this.#skipWhitespace();
    const value = this.#value(0);
    this.#skipWhitespace();
    if (this.#at < this.text.length) this.#fail('unexpected content after the JSON value');
    return value;
  }

  #fail(message: string): never {
    throw new JsonSyntaxError(message, this.#at);
  }

  #skipWhitespace(): void {
    while (WHITESPACE.has(this.text[this.#at])) this.#at++;
  }

  #expect(char: string): void {
    if (this.text[this.#at] !== char) this.#fail(`expected '${char}'`);
    this.#at++;
  }

  #value(depth: number): JsonValue {
    if (depth > this.maxDepth) this.#fail(`nesting deeper than ${this.maxDepth}`);
    const c = this.text[this.#at];
    if (c === '{') return this.#object(depth);
    if (c === '[') return this.#array(depth);
    if (c === '"') return this.#string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.#number();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.#at)) {
        this.#at += word.length;
        return value;
      }
    }
    return this.#fail(c === undefined ? 'unexpected end of input' : `unexpected character ${quote(c)}`);
  }

  #object(depth: number): JsonValue {
    const result: { [key: string]: JsonValue } = Object.create(null);
    const seen = new Set<string>();
    this.#expect('{');
    this.#skipWhitespace();
    if (this.text[this.#at] === '}') {
      this.#at++;
      return result;
    }
    for (;;) {
      this.#skipWhitespace();
      if (this.text[this.#at] !== '"') this.#fail('expected a string key');
      const keyAt = this.#at;
      const key = this.#string();
      if (seen.has(key)) throw new JsonSyntaxError(`duplicate key ${quote(key, 200)}`, keyAt, depth);
      seen.add(key);
      this.#skipWhitespace();
      this.#expect(':');
      this.#skipWhitespace();
      result[key] = this.#value(depth + 1);
      this.#skipWhitespace();
      if (this.text[this.#at] === ',') {
        this.#at++;
        continue;
      }
      this.#expect('}');
      return result;
    }
  }

  #array(depth: number): JsonValue {
    const result: JsonValue[] = [];
    this.#expect('[');
    this.#skipWhitespace();
    if (this.text[this.#at] === ']') {
      this.#at++;
      return result;
    }
    for (;;) {
      this.#skipWhitespace();
      result.push(this.#value(depth + 1));
      this.#skipWhitespace();
      if (this.text[this.#at] === ',') {
        this.#at++;
        continue;
      }
      this.#expect(']');
      return result;
    }
  }

  #string(): string {
    this.#expect('"');
    let out = '';
    for (;;) {
      PLAIN_RUN.lastIndex = this.#at;
      PLAIN_RUN.test(this.text);
      out += this.text.slice(this.#at, PLAIN_RUN.lastIndex); // up to the next quote, backslash or control character, whole
      this.#at = PLAIN_RUN.lastIndex;
      const c = this.text[this.#at];
      if (c === undefined) this.#fail('unterminated string');
      if (c === '"') {
        this.#at++;
        return out;
      }
      if (c < ' ') this.#fail('control character in a string');
      const e = this.text[this.#at + 1];
      if (e === 'u') {
        out += this.#unicodeEscape();
      } else if (e in ESCAPES) {
        out += ESCAPES[e];
        this.#at += 2;
      } else {
        this.#fail('invalid escape');
      }
    }
  }

  /** \uXXXX, with surrogate pairs joined and lone surrogates rejected. */
  #unicodeEscape(): string {
    const unit = (at: number) => {
      const hex = this.text.slice(at + 2, at + 6);
      if (this.text.slice(at, at + 2) !== '\\u' || !/^[0-9a-fA-F]{4}$/.test(hex)) return -1;
      return parseInt(hex, 16);
    };
    const high = unit(this.#at);
    if (high < 0) this.#fail('invalid \\u escape');
    if (high >= 0xdc00 && high <= 0xdfff) this.#fail('lone low surrogate');
    if (high < 0xd800 || high > 0xdbff) {
      this.#at += 6;
      return String.fromCharCode(high);
    }
    const low = unit(this.#at + 6);
    if (low < 0xdc00 || low > 0xdfff) this.#fail('lone high surrogate');
    this.#at += 12;
    return String.fromCharCode(high, low);
  }

  #number(): JsonValue {
    NUMBER.lastIndex = this.#at;
    const match = NUMBER.exec(this.text);
    if (match === null) this.#fail('invalid number');
    this.#at += match[0].length;
    if (this.exact) return new JsonNumber(match[0]);
    const value = Number(match[0]);
    if (/^-?\d+$/.test(match[0]) && !Number.isSafeInteger(value)) this.#fail(`integer ${match[0].slice(0, 40)} is beyond 2^53`);
    return value;
  }
}

/**
 * JSON text for a value, numbers parsed with `exact` written as their source text (so a config's 3.0 stays 3.0,
 * which transformers' float fields require), everything else as JSON.stringify(value, null, indent) writes it.
 *
 *   stringifyJson(parseStrictJson('{"cap": 3.0}', { exact: true }))  // '{\n  "cap": 3.0\n}'
 */
export function stringifyJson(value: JsonValue, indent = 2, depth = 0): string {
  if (value instanceof JsonNumber) return value.text;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const [inner, outer] = [' '.repeat(indent * (depth + 1)), ' '.repeat(indent * depth)];
  // as JSON.stringify: an undefined entry is left out of an object and written null in an array
  const items = Array.isArray(value)
    ? value.map((v) => (v === undefined ? 'null' : stringifyJson(v, indent, depth + 1)))
    : Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}: ${stringifyJson(v, indent, depth + 1)}`);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  return items.length === 0 ? `${open}${close}` : `${open}\n${items.map((i) => inner + i).join(',\n')}\n${outer}${close}`;
}

export function parseStrictJson(text: string, { exact = false, maxDepth = 64 }: StrictJsonOptions = {}): JsonValue {
  return new Parser(text, exact, maxDepth).parseDocument();
}
