// A TypeScript consumer of the installed packages: `tsc --noEmit` must accept it
// against their declarations (the public API, the subpaths, the CLI's library).
import { F, Module, Tensor, init, manualSeed, nn, noGrad, optim } from '@lorakit/core';
import { SafetensorsFile } from '@lorakit/core/io';
import { NF4, quantize4bit } from '@lorakit/core/quantization';
import { AutoModelForCausalLM, type CausalLM, type TrainResult } from '@lorakit/models';
import { LoraConfig, getPeftModel, type MergeResult, mergeCheckpoint } from '@lorakit/adapters';

class Head extends Module {
  proj = new nn.Linear(4, 2);
  act = new nn.SiLU();

  forward(x: Tensor): Tensor {
    return F.relu(this.act.call(this.proj.call(x))); // [N, 2]
  }
}

manualSeed(0);
const head = new Head();
head.apply((m) => {
  if (m instanceof nn.Linear) init.zeros_(m.weight);
});
const optimizer = new optim.AdamW(head.parameters(), { lr: 1e-3 });
const loss: Tensor = head.call(Tensor.randn([3, 4])).sum();
loss.backward();
optimizer.step();
const frozen: number = noGrad(() => head.call(Tensor.randn([1, 4])).numel);
const names: string[] = (await SafetensorsFile.open('model.safetensors')).names();
const codes: number = NF4.length + quantize4bit(new Float32Array(64), 'nf4', 64).absmax.length;

const model: CausalLM = await AutoModelForCausalLM.fromPretrained('model');
const peft = getPeftModel(model, new LoraConfig({ r: 8, targetModules: ['q_proj', 'v_proj'] }));
const summary: string = peft.trainableParametersSummary();
const merged: MergeResult = await mergeCheckpoint({ model: 'model', adapters: [{ dir: 'adapter', weight: 0.5 }], out: 'merged' });
declare const result: TrainResult;
export const used = [frozen, names, codes, summary, merged.files, result.globalStep];
