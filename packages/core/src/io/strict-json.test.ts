/** The strict JSON parser's byte order mark check, shared with the JSONL reader (docs/reliability.md rule 3), and writing exact numbers back. */
import test from 'ava';
import { bomProblem, parseStrictJson, stringifyJson, type JsonValue } from './strict-json.ts';

test('a byte order mark is found in decoded text and in raw bytes', (t) => {
  t.regex(bomProblem('\ufeff{}')!, /^starts with a byte order mark \(BOM\)/);
  t.regex(bomProblem(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))!, /byte order mark \(BOM\)/);
});

test('text without a byte order mark, or with one later on, has no BOM problem', (t) => {
  t.is(bomProblem('{}'), null);
  t.is(bomProblem(' \ufeff'), null);
  t.is(bomProblem(''), null);
  t.is(bomProblem(new Uint8Array([0xef, 0xbb])), null);
  t.is(bomProblem(new Uint8Array([0x7b, 0xef, 0xbb, 0xbf])), null);
});

test('parseStrictJson names a leading byte order mark as a BOM, not as an unexpected character', (t) => {
  const error = t.throws(() => parseStrictJson('\ufeff{"a": 1}'));
  t.is(error?.message, 'starts with a byte order mark (BOM) at character 0');
});

test('an unexpected character and a duplicate key are quoted in the message', (t) => {
  t.is(t.throws(() => parseStrictJson('{"a": \u001b}'))?.message, 'unexpected character "\\u001b" at character 6');
  t.regex(t.throws(() => parseStrictJson('{"a\\n": 1, "a\\n": 2}'))!.message, /^duplicate key "a\\n" at character 11$/);
});

test('stringifyJson writes exact numbers as their source text and everything else as JSON.stringify does', (t) => {
  const text = '{"cap": 3.0, "eps": 1e-05, "big": 18446744073709551615, "list": [1, 2.50, {"a": null}], "empty": {}, "none": [], "s": "x\\n"}';
  const exact = parseStrictJson(text, { exact: true });
  t.is(stringifyJson(exact), '{\n  "cap": 3.0,\n  "eps": 1e-05,\n  "big": 18446744073709551615,\n  "list": [\n    1,\n    2.50,\n    {\n      "a": null\n    }\n  ],\n  "empty": {},\n  "none": [],\n  "s": "x\\n"\n}');
  const plain = parseStrictJson(text.replace('18446744073709551615', '7'));
  t.is(stringifyJson(plain), JSON.stringify(plain, null, 2));
  const holes = { a: undefined, b: [undefined, 1] } as unknown as JsonValue;
  t.is(stringifyJson(holes), JSON.stringify(holes, null, 2));
});
