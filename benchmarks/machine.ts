/**
 * This machine's fp32 peak from lscpu: cores × 2 FMA pipes × SIMD lanes × 2 FLOP × clock.
 * Lanes are 16 with AVX-512, 8 with AVX2.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface Machine {
  model: string;
  cores: number;
  ghz: number;
  lanes: number;
  peakGflops: number;
}

export function describeMachine(): Machine {
  const lscpu = execFileSync('lscpu', { encoding: 'utf8' });
  const field = (name: string) => lscpu.match(new RegExp(`^${name}:\\s*(.+)$`, 'm'))?.[1].trim();
  const threadsPerCore = Number(field('Thread\\(s\\) per core') ?? 1);
  const cores = Number(field('CPU\\(s\\)') ?? cpus().length) / threadsPerCore;
  const mhz = Number(field('CPU max MHz') ?? cpuinfoMhz() ?? cpus()[0].speed);
  const flags = field('Flags') ?? '';
  const lanes = /\bavx512f\b/.test(flags) ? 16 : /\bavx2\b/.test(flags) ? 8 : 4;
  const ghz = mhz / 1000;
  return { model: field('Model name') ?? 'unknown', cores, ghz, lanes, peakGflops: cores * 2 * lanes * 2 * ghz };
}

function cpuinfoMhz(): number | undefined {
  const text = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = text.match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1];
  return mhz === undefined ? undefined : Number(mhz);
}
