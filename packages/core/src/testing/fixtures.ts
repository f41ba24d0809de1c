/**
 * Checkpoint folders for tests that need a tokenizer the architecture fixtures lack (a GGUF file carries one):
 * the fixture copied to a temporary folder, its config changed, and a byte-level BPE tokenizer.json with one token
 * per embedding row and no merges.
 */
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

type Config = Record<string, unknown> & { vocab_size?: number; text_config?: { vocab_size: number } };

export async function fixtureWithTokenizer(fixture: string, changes: (config: Config) => Record<string, unknown> = () => ({})): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `lorakit-${basename(fixture)}-`));
  await cp(fixture, dir, { recursive: true });
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Config;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...changes(config) }));
  const size = config.vocab_size ?? config.text_config!.vocab_size;
  const vocab = Object.fromEntries(Array.from({ length: size }, (_, i) => [String.fromCodePoint(0x100 + i), i]));
  const tokenizer = { model: { type: 'BPE', vocab, merges: [] }, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true }, added_tokens: [] };
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  return dir;
}
