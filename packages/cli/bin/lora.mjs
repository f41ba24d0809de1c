#!/usr/bin/env node
// The `lora` command: the bundle `npm run install-deps` makes (packages/cli/bundle.ts)
// while it is newer than every source file, else the TypeScript itself through tsx.
// LORAKIT_FROM_SOURCE=1 always runs the TypeScript.
import { readdirSync, statSync } from 'node:fs';

const bundle = new URL('../dist/lora.mjs', import.meta.url);
const packages = new URL('../../', import.meta.url);

/** Whether the bundle was built after the last change to any package's sources, manifest or the lockfile. */
function bundleIsFresh() {
  try {
    const built = statSync(bundle).mtimeMs;
    const changed = (url) => statSync(url).mtimeMs > built;
    if (changed(new URL('../pnpm-lock.yaml', packages))) return false;
    for (const name of readdirSync(packages).filter((n) => statSync(new URL(n, packages)).isDirectory())) {
      const src = new URL(`${name}/src/`, packages);
      if (changed(new URL(`${name}/package.json`, packages)) || changed(src)) return false;
      for (const file of readdirSync(src, { recursive: true })) if (changed(new URL(file, src))) return false;
    }
    return true;
  } catch {
    return false; // not built, or not in the repository's layout
  }
}

if (process.env.LORAKIT_FROM_SOURCE !== '1' && bundleIsFresh()) {
  if (process.argv.includes('--verbose')) process.setSourceMapsEnabled(true); // stack traces name the TypeScript
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
