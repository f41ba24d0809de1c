/**
 * Assembles the WebAssembly kernels from their text (.wat) with wabt:
 *
 *   npm run build:wasm          # writes bf16-lora-merge.wasm beside its .wat
 *
 * The binaries are committed so that lorakit needs no assembler at run time;
 * a test checks that each one is the assembly of its text.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import initWabt from 'wabt';

export const WASM_KERNELS = ['bf16-lora-merge'];

export async function assemble(name: string): Promise<Uint8Array> {
  const wabt = await initWabt();
  const path = fileURLToPath(new URL(`./${name}.wat`, import.meta.url));
  const module = wabt.parseWat(path, await readFile(path, 'utf8'), { simd: true, relaxed_simd: true, threads: true });
  try {
    // NOTE: no module.validate(): wabt 1.0.39's validator refuses shared memories whatever the features;
    // V8 validates the binary when it loads it (and the kernels' tests load them).
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const name of WASM_KERNELS) {
    const bytes = await assemble(name);
    await writeFile(new URL(`./${name}.wasm`, import.meta.url), bytes);
    console.log(`${name}.wasm: ${bytes.length} bytes`);
  }
}
