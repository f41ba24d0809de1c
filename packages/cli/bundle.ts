/**
 * The `lora` command as one JavaScript bundle (esbuild), so that it starts in
 * a fraction of the time tsx takes to load its 130 TypeScript modules one by
 * one (`lora --help` 0.42 s -> 0.18 s):
 *
 *   tsx packages/cli/bundle.ts     # run by `npm run install-deps`; writes packages/cli/dist/
 *
 * bin/lora.mjs runs the bundle while it is newer than every source file, and
 * the TypeScript through tsx otherwise. Worker threads are entries of their
 * own (typeScriptWorker finds them beside the bundle), the WebAssembly kernel
 * is copied beside them, and the dependencies stay where pnpm put them,
 * imported by relative path.
 */
import { build, type Plugin } from 'esbuild';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const packages = fileURLToPath(new URL('../', import.meta.url));

const ENTRIES = {
  lora: `${packages}cli/src/main.ts`,
  'merge-worker': `${packages}adapters/src/merge-worker.ts`,
  'quantize-worker': `${packages}core/src/quantization/quantize-worker.ts`,
};
const FILES = [`${packages}core/src/wasm/bf16-lora-merge.wasm`];

/** npm packages stay out of the bundle, imported from node_modules by a path relative to dist/ (pnpm does not hoist them). */
function dependenciesByPath(dist: string): Plugin {
  return {
    name: 'dependencies-by-path',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async ({ path, kind, resolveDir, pluginData }) => {
        if (path.startsWith('@lorakit/') || path.startsWith('node:') || pluginData?.resolving) return undefined;
        const resolved = await build.resolve(path, { kind, resolveDir, pluginData: { resolving: true } });
        if (resolved.errors.length > 0) return { errors: resolved.errors };
        return { path: `./${relative(dist, resolved.path)}`, external: true };
      });
    },
  };
}

/** Builds the bundle into `dist` (by default packages/cli/dist, where bin/lora.mjs looks), replacing it whole. */
export async function bundle(dist = `${packages}cli/dist`): Promise<void> {
  const staging = `${dist}.tmp`;
  await rm(staging, { recursive: true, force: true });
  await build({
    entryPoints: ENTRIES,
    outdir: staging,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    plugins: [dependenciesByPath(dist)],
    sourcemap: true, // for --verbose's stack traces (bin/lora.mjs turns source maps on)
    logLevel: 'warning',
  });
  await mkdir(staging, { recursive: true });
  for (const file of FILES) await copyFile(file, `${staging}/${file.split('/').at(-1)}`);
  await rm(dist, { recursive: true, force: true });
  await rename(staging, dist);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle();
