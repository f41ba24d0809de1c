/**
 * Progress on stderr: a bar with ETA, loss and tokens/s when stderr is a
 * terminal, plain periodic lines otherwise (logs, CI), nothing when asked.
 */
import cliProgress from 'cli-progress';

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

export interface ProgressUpdate {
  step: number;
  loss: number | null;
  tokensPerSecond: number;
  learningRate: number;
}

export interface Progress {
  update(u: ProgressUpdate, logged: boolean): void;
  note(message: string): void;
  stop(): void;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const m = Math.floor(seconds / 60);
  return m > 0 ? `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s` : `${Math.round(seconds)}s`;
}

class Bar implements Progress {
  readonly #bar: cliProgress.SingleBar;

  constructor(total: number, start: number) {
    this.#bar = new cliProgress.SingleBar(
      { format: 'train |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}', stream: process.stderr, hideCursor: true, etaBuffer: 20 },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(total, start, { loss: '-', tps: '-' });
  }

  update(u: ProgressUpdate): void {
    this.#bar.update(u.step, { loss: u.loss === null ? '-' : u.loss.toFixed(4), tps: Math.round(u.tokensPerSecond) });
  }

  note(message: string): void {
    this.#bar.stop();
    process.stderr.write(`${message}\n`);
  }

  stop(): void {
    this.#bar.stop();
  }
}

class Lines implements Progress {
  readonly #started = performance.now();

  constructor(readonly total: number, readonly start: number) {}

  update(u: ProgressUpdate, logged: boolean): void {
    if (!logged) return;
    const elapsed = (performance.now() - this.#started) / 1000;
    const eta = ((this.total - u.step) * elapsed) / Math.max(1, u.step - this.start);
    const loss = u.loss === null ? '-' : u.loss.toFixed(4);
    process.stderr.write(`step ${u.step}/${this.total} (${Math.round((100 * u.step) / this.total)}%) loss ${loss} lr ${u.learningRate.toExponential(2)} ${Math.round(u.tokensPerSecond)} tok/s ETA ${duration(eta)}\n`);
  }

  note(message: string): void {
    process.stderr.write(`${message}\n`);
  }

  stop(): void {}
}

const silent: Progress = { update() {}, note() {}, stop() {} };

export function createProgress(mode: ProgressMode, total: number, start: number): Progress {
  const resolved = mode === 'auto' ? (process.stderr.isTTY ? 'bar' : 'lines') : mode;
  if (resolved === 'none') return silent;
  return resolved === 'bar' ? new Bar(total, start) : new Lines(total, start);
}
