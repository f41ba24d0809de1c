/** @lorakit/core's output-folder checks, reported against the --out flag. */
import { FileFormatError, checkOutputFolder } from '@lorakit/core/io';
import { UsageError } from './errors.ts';

export async function checkOutFlag(out: string, inputs: string[], options: { allowExisting?: boolean } = {}): Promise<void> {
  await checkOutputFolder(out, inputs, options).catch((error: unknown) => {
    throw error instanceof FileFormatError ? new UsageError(`--out ${error.message}`) : error;
  });
}
