// Wrong on purpose, line by line: `tsc --noEmit` must reject each line, which
// shows the installed declarations carry real types rather than `any`.
import { Tensor, nn, optim } from '@lorakit/core';
import { LoraConfig } from '@lorakit/adapters';

export const a = new nn.Linear('4', 2);
export const b = new optim.AdamW([], { lr: '0.001' });
export const c = new LoraConfig({ r: 'eight' });
export const d: string = Tensor.randn([2]).numel;
