/** Embedding: a [num, dim] table looked up by integer ids; init N(0, 1) as PyTorch. */
import { Module } from '../module.ts';
import { Parameter } from '../parameter.ts';
import { Tensor } from '../tensor.ts';
import { normal_ } from '../init.ts';
import { embedding } from '../ops/embedding.ts';

export class Embedding extends Module {
  weight: Parameter;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number) {
    super();
    this.weight = new Parameter(normal_(Tensor.zeros([numEmbeddings, embeddingDim])));
  }

  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight); // [..., dim]
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}`;
  }
}
