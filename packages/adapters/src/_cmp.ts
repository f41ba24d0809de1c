import { Checkpoint } from '@lorakit/core';
const [a, b] = [await Checkpoint.open('/tmp/m0'), await Checkpoint.open('/tmp/m1')];
let shown = 0, differing = 0;
for (const n of a.names()) {
  const [x, y] = [new Uint16Array((await a.readBytes(n)).buffer), new Uint16Array((await b.readBytes(n)).buffer)];
  let diff = 0, first = -1;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) { diff++; if (first < 0) first = i; }
  if (diff) differing++;
  if (diff && shown++ < 10) console.log(n, a.entry(n).shape, diff, 'first at', first, x[first].toString(16), y[first].toString(16));
}
console.log('tensors differing:', differing);
