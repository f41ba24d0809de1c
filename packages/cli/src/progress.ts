/** A bar on stderr for counted work, shown only when stderr is a terminal. */
import cliProgress from 'cli-progress';

export interface StepProgress {
  update: (done: number, total: number) => void;
  stop: () => void;
}

export function stepProgress(label: string, unit: string): StepProgress {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar({ format: `${label} |{bar}| {value}/{total} ${unit} | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update: (done, total) => {
      if (!started) bar.start(total, done);
      else bar.update(done);
      started = true;
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
