/**
 * This machine as the benchmarks report it: the CPU model as /proc/cpuinfo
 * names it, its cores, and its fp32 peak measured by a loop of fused
 * multiply-adds (fma-peak.c, compiled here with -march=native) on one thread
 * and on every core, not derived from a nominal clock.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';

export interface Machine {
  model: string;
  cores: number;
  /** Measured fp32 GFLOP/s of one thread, and of one thread on each core. */
  peakGflopsOneThread: number;
  peakGflops: number;
}

const SOURCE = 'benchmarks/fma-peak.c';
const BINARY = 'benchmarks/out/fma-peak';

export function describeMachine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? 'unknown';
  const cores = new Set([...cpuinfo.matchAll(/^physical id\s*:\s*(\d+)[\s\S]*?^core id\s*:\s*(\d+)/gm)].map((m) => `${m[1]}:${m[2]}`)).size || Number(execFileSync('nproc', { encoding: 'utf8' }));
  return { model, cores, peakGflopsOneThread: measuredPeak(1), peakGflops: measuredPeak(cores) };
}

function measuredPeak(threads: number): number {
  if (!existsSync(BINARY)) {
    mkdirSync('benchmarks/out', { recursive: true });
    try {
      execFileSync('gcc', ['-O3', '-march=native', '-pthread', SOURCE, '-o', BINARY], { stdio: 'pipe' });
    } catch (error) {
      throw new Error(`benchmarks: measuring the fp32 peak needs gcc (apt-get install gcc) to build ${SOURCE}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return Number(execFileSync(BINARY, [String(threads)], { encoding: 'utf8' }).split(' ')[1]);
}
