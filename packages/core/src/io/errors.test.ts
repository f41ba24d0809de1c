/** quote(): how every user value looks in a message (docs/reliability.md rule 1). */
import test from 'ava';
import { quote } from './errors.ts';
import { JsonNumber, parseStrictJson } from './strict-json.ts';

test('a string keeps its quotes and a number has none, so "8" and 8 differ', (t) => {
  t.is(quote('8'), '"8"');
  t.is(quote(8), '8');
  t.is(quote(2.5e-7), '2.5e-7');
});

test('NaN and Infinity are shown as written, not as null', (t) => {
  t.is(quote(NaN), 'NaN');
  t.is(quote(Infinity), 'Infinity');
  t.is(quote(-Infinity), '-Infinity');
  t.is(quote(-0), '-0');
});

test('arrays and objects are shown in JSON notation with the same rules inside', (t) => {
  t.is(quote([1, '8', NaN, -Infinity, null, true]), '[1,"8",NaN,-Infinity,null,true]');
  t.is(quote({ r: '8', alpha: Infinity, nested: { layers: [0, NaN] } }), '{"r":"8","alpha":Infinity,"nested":{"layers":[0,NaN]}}');
  t.is(quote(parseStrictJson('{"a": [1]}')), '{"a":[1]}'); // objects without a prototype too
});

test('a JsonNumber is shown as its exact source text', (t) => {
  t.is(quote(new JsonNumber('18446744073709551615')), '18446744073709551615');
  t.is(quote([new JsonNumber('8.0')]), '[8.0]');
});

test('null, booleans, undefined and bigints are shown as their names and digits', (t) => {
  t.is(quote(null), 'null');
  t.is(quote(false), 'false');
  t.is(quote(undefined), 'undefined');
  t.is(quote(2n ** 64n), '18446744073709551616');
});

test('control characters and ANSI escapes are escaped, in strings, keys and nested values', (t) => {
  t.is(quote('a\nb\u001b[31m'), '"a\\nb\\u001b[31m"');
  t.is(quote({ 'k\n': ['\u001b'] }), '{"k\\n":["\\u001b"]}');
});

test('a long value is cut at the limit and says how long it was', (t) => {
  t.is(quote('x'.repeat(1000)), `"${'x'.repeat(119)}…(1002 characters)`);
  t.is(quote(Array.from({ length: 100 }, () => NaN), 10), '[NaN,NaN,N…(401 characters)');
});

test('a value that contains itself is shown without looping', (t) => {
  const cyclic: unknown[] = [1];
  cyclic.push(cyclic);
  t.is(quote(cyclic), '[1,[circular]]');
  const shared = [1];
  t.is(quote([shared, shared]), '[[1],[1]]');
});
