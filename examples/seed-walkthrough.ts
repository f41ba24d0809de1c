/**
 * The nn.Module tutorial lorakit grew from, retold with lorakit.
 *
 *   npm run seed
 *
 * A HEAD module holds an MLP and two Parameters, w and b. We list its children
 * and parameters, replace w by a Linear layer, re-initialise every Linear with
 * apply(), put two forward hooks on one layer, and freeze the MLP to see which
 * parameters still receive gradients.
 */
import { Module, Parameter, Tensor, findUnregisteredTensors, init, manualSeed } from '@lorakit/core';
import { Linear, ReLU, Sequential } from '@lorakit/core/nn';

manualSeed(0);

class MLP extends Module {
  layers = new Sequential(new Linear(4, 8), new ReLU(), new Linear(8, 2));
  forward(x: Tensor): Tensor {
    return this.layers.call(x);
  }
}

class Head extends Module {
  mlp = new MLP();
  w: Parameter | Linear = new Parameter(Tensor.randn([2]));
  b = new Parameter(Tensor.zeros([1]));
  forward(x: Tensor): Tensor {
    const h = this.mlp.call(x); // [N, 2]
    const scored = this.w instanceof Linear ? this.w.call(h) : h.mul(this.w).sum(-1, true); // [N, 1]
    return scored.add(this.b);
  }
}

const head = new Head();
const section = (title: string) => console.log(`\n== ${title}`);
const shapeOf = (t: Tensor) => `[${t.shape.join(', ')}]`;

section('1. Children are modules only: w and b are parameters, not children');
for (const [name, child] of head.namedChildren()) console.log(`child ${name}: ${child.constructor.name}`);
for (const [name, p] of head.namedParameters()) console.log(`parameter ${name.padEnd(24)} ${shapeOf(p)}`);
console.log(`modules(): ${head.modules().map((m) => m.constructor.name).join(', ')}`);

section('2. A tensor that requires grad is not a parameter');
(head as unknown as { temperature: Tensor }).temperature = Tensor.fromArray([1]).requiresGrad_();
console.log(`parameters still ${head.parameters().length}; findUnregisteredTensors finds:`);
for (const { path, reason } of findUnregisteredTensors(head)) console.log(`  ${path}: ${reason}`);
delete (head as unknown as { temperature?: Tensor }).temperature;

section('3. Replacing the parameter w by a Linear layer makes it a child');
head.w = new Linear(2, 1);
console.log(`children: ${head.namedChildren().map(([n]) => n).join(', ')}`);
console.log(`parameters: ${head.namedParameters().map(([n]) => n).join(', ')}`);
console.log(head.toString());

section('4. apply() re-initialises every Linear from N(0, 0.5), children first');
head.apply((m) => {
  if (m instanceof Linear) {
    init.normal_(m.weight, 0, 0.5);
    console.log(`re-initialised ${m.toString()}`);
  }
});

section('5. Two forward hooks on one layer: one stores outputs, one changes them');
const first = head.mlp.layers.children()[0] as Linear;
const stored: Tensor[] = [];
const storing = first.registerForwardHook((_m, _inputs, out) => void stored.push(out as Tensor));
const silencing = first.registerForwardHook((_m, _inputs, out) => (out as Tensor).mul(0));
const x = Tensor.randn([3, 4]);
console.log(`with hooks:    ${head.call(x).toString()}  (the second hook zeroed the first layer's output)`);
console.log(`the storing hook kept a ${shapeOf(stored[0])} activation`);
storing.remove();
silencing.remove();
console.log(`hooks removed: ${head.call(x).toString()}`);

section('6. Freezing the MLP: only the rest receives gradients');
head.mlp.freeze();
head.call(x).sum().backward();
for (const [name, p] of head.namedParameters()) {
  console.log(`${name.padEnd(24)} requiresGrad=${String(p.requiresGrad).padEnd(5)} grad=${p.grad === null ? 'none' : shapeOf(p.grad)}`);
}
console.log(`trainable ${head.numParameters({ trainableOnly: true })} of ${head.numParameters()} parameters`);
