/**
 * Writes the house-style dataset (train.jsonl, eval.jsonl) that examples/finetune.ts
 * teaches tiny-code-llama: every function opens with a one-line docstring
 * "Return the <what it computes>." and returns through a `result` variable.
 *
 *   def area_of_square(side):
 *       """Return the area of square."""
 *       result = side * side
 *       return result
 *
 * Held-out operations go to eval.jsonl, so its loss measures the style, not memory.
 *   npx tsx examples/data/make-house-style.ts
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const OPERATIONS: Array<[string, string[], string]> = [
  ['add', ['a', 'b'], 'a + b'], ['subtract', ['a', 'b'], 'a - b'], ['multiply', ['a', 'b'], 'a * b'], ['divide', ['a', 'b'], 'a / b'],
  ['square', ['x'], 'x * x'], ['cube', ['x'], 'x ** 3'], ['double', ['n'], 'n * 2'], ['half', ['n'], 'n / 2'], ['negate', ['value'], '-value'],
  ['average', ['a', 'b'], '(a + b) / 2'], ['maximum', ['a', 'b'], 'max(a, b)'], ['minimum', ['a', 'b'], 'min(a, b)'], ['absolute', ['x'], 'abs(x)'],
  ['is_even', ['n'], 'n % 2 == 0'], ['is_odd', ['n'], 'n % 2 == 1'], ['first_item', ['items'], 'items[0]'], ['last_item', ['items'], 'items[-1]'],
  ['count_items', ['items'], 'len(items)'], ['total', ['values'], 'sum(values)'], ['reverse_text', ['text'], 'text[::-1]'], ['upper_text', ['text'], 'text.upper()'],
  ['lower_text', ['text'], 'text.lower()'], ['join_words', ['words'], '" ".join(words)'], ['split_words', ['text'], 'text.split()'], ['sorted_items', ['items'], 'sorted(items)'],
  ['unique_items', ['items'], 'list(set(items))'], ['celsius_to_fahrenheit', ['celsius'], 'celsius * 9 / 5 + 32'], ['area_of_square', ['side'], 'side * side'],
  ['area_of_rectangle', ['width', 'height'], 'width * height'], ['perimeter_of_square', ['side'], '4 * side'], ['percent', ['part', 'whole'], '100 * part / whole'],
  ['clamp', ['x', 'low', 'high'], 'max(low, min(x, high))'], ['greeting', ['name'], '"Hello, " + name'], ['is_empty', ['items'], 'len(items) == 0'],
  ['contains', ['items', 'item'], 'item in items'], ['power', ['base', 'exponent'], 'base ** exponent'], ['remainder', ['a', 'b'], 'a % b'],
  ['hypotenuse', ['a', 'b'], '(a * a + b * b) ** 0.5'], ['word_count', ['text'], 'len(text.split())'], ['squares', ['numbers'], '[n * n for n in numbers]'],
  ['evens', ['numbers'], '[n for n in numbers if n % 2 == 0]'], ['product', ['a', 'b', 'c'], 'a * b * c'], ['distance', ['x1', 'x2'], 'abs(x2 - x1)'],
  ['repeat_text', ['text', 'times'], 'text * times'], ['strip_text', ['text'], 'text.strip()'], ['starts_with', ['text', 'prefix'], 'text.startswith(prefix)'],
];
const HELD_OUT = new Set(['average', 'cube', 'word_count', 'area_of_rectangle', 'is_empty', 'hypotenuse', 'upper_text', 'evens']);
const PREFIXES = ['', 'compute_', 'get_', 'calc_'];

function example([name, args, expression]: [string, string[], string], prefix: string) {
  const what = name.replaceAll('_', ' ');
  return {
    prompt: `def ${prefix}${name}(${args.join(', ')}):\n`,
    completion: `    """Return the ${what}."""\n    result = ${expression}\n    return result\n`,
  };
}

const dir = fileURLToPath(new URL('./house-style/', import.meta.url));
const lines = (held: boolean) => OPERATIONS.filter(([name]) => HELD_OUT.has(name) === held).flatMap((op) => PREFIXES.map((p) => JSON.stringify(example(op, p)))).join('\n') + '\n';
writeFileSync(`${dir}train.jsonl`, lines(false));
writeFileSync(`${dir}eval.jsonl`, lines(true));
