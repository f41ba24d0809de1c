/**
 * What becomes of --out: @lorakit/core's output-folder checks reported against
 * the flag, what an interrupted run left there removed, and a command stopped
 * by a signal leaving nothing behind.
 */
import { FileFormatError, checkOutputFolder, removeStaleTemporaries, removeTemporariesNow } from '@lorakit/core/io';
import { UsageError } from './errors.ts';

export async function checkOutFlag(out: string, inputs: string[], options: { allowExisting?: boolean } = {}): Promise<void> {
  await checkOutputFolder(out, inputs, options).catch((error: unknown) => {
    throw error instanceof FileFormatError ? new UsageError(`--out ${error.message}`) : error;
  });
  for (const stale of await removeStaleTemporaries(out)) process.stderr.write(`note: removed ${stale}, left by an interrupted run\n`);
}

const EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * On Ctrl-C or SIGTERM, remove the output being written, say so in one line
 * and exit 128 + the signal's number. (A second Ctrl-C kills at once.)
 * Not for `train`, whose Trainer finishes the step and saves a checkpoint.
 */
export function stopCleanlyOnSignals(out: string): void {
  for (const [signal, code] of Object.entries(EXIT_CODES)) {
    process.once(signal, () => {
      const removed = removeTemporariesNow();
      process.stderr.write(`lora: stopped by ${signal}; ${removed.length > 0 ? 'the unfinished output was removed' : 'nothing was written'}, ${out} is as it was\n`);
      process.exit(code);
    });
  }
}
