/** lora generate <model> [--adapter DIR] --prompt TEXT: the completion streamed to stdout as it comes. */
import { AutoModelForCausalLM, AutoTokenizer, generate as generateIds, type GenerativeModel } from '@lorakit/models';
import { PeftModel } from '@lorakit/adapters';
import { UsageError } from '../errors.ts';

export interface GenerateArgs {
  model: string;
  adapter?: string;
  prompt: string;
  maxNewTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed: number;
  dtype: 'fp32' | 'q4';
  json: boolean;
}

export async function generate(args: GenerateArgs): Promise<void> {
  if (args.prompt === '') throw new UsageError('--prompt is empty');
  if (args.topP !== undefined && !(args.topP > 0 && args.topP <= 1)) throw new UsageError(`--top-p must be in (0, 1], got ${args.topP}`);
  const base = await AutoModelForCausalLM.fromPretrained(args.model, { onWarning: () => {} });
  const model: GenerativeModel = args.adapter ? await PeftModel.fromPretrained(base, args.adapter, { onWarning: (m) => process.stderr.write(`warning: ${m}\n`) }) : base;
  const tokenizer = await AutoTokenizer.fromPretrained(args.model);
  const prompt = tokenizer.encode(args.prompt);
  const generated: number[] = [];
  let printed = '';
  if (!args.json) process.stdout.write(args.prompt);
  // Decode everything so far and print what is new: a token can end in the middle of a UTF-8 character.
  const onToken = args.json ? undefined : ([{ token }]: Array<{ token: number }>) => {
    generated.push(token);
    const text = tokenizer.decode(generated, { skipSpecialTokens: true });
    if (text.endsWith('\uFFFD')) return;
    process.stdout.write(text.slice(printed.length));
    printed = text;
  };
  const [ids] = generateIds(model, [prompt], {
    maxNewTokens: args.maxNewTokens, temperature: args.temperature, topK: args.topK, topP: args.topP, seed: args.seed,
    eosTokenId: tokenizer.eosTokenId, onToken, dtype: args.dtype,
  });
  const completion = tokenizer.decode(ids.slice(prompt.length), { skipSpecialTokens: true });
  if (args.json) process.stdout.write(`${JSON.stringify({ prompt: args.prompt, completion, tokens: ids.slice(prompt.length) })}\n`);
  else process.stdout.write(`${completion.slice(printed.length)}\n`);
}
