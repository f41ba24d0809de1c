#!/usr/bin/env node
// The `lora` command. lorakit is TypeScript run by tsx: register it, then start.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
