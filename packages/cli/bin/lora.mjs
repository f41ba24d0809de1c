#!/usr/bin/env node
// The `lora` command, as compiled to dist/ by `npm run build`. --verbose prints
// stack traces, which the source maps lead back to the TypeScript.
if (process.argv.includes('--verbose')) process.setSourceMapsEnabled(true);
await import('../dist/main.js');
