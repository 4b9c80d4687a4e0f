import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage } from '../../src/storage/file.js';
import { runStorageConformance } from './conformance.js';

/** A fresh temporary directory per test. */
async function temporaryDirectory(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'synod-storage-'));
}

runStorageConformance('file', async () => {
  const directory = await temporaryDirectory();
  return {
    open: () => FileStorage.open(directory, { logger: { warn: () => {} } }),
    cleanup: () => rm(directory, { recursive: true, force: true }),
  };
});

// A small segment limit makes the shared suite exercise rotation and multi-segment recovery too.
runStorageConformance('file with 4 KiB segments', async () => {
  const directory = await temporaryDirectory();
  return {
    open: () => FileStorage.open(directory, { segmentBytesMax: 4096, logger: { warn: () => {} } }),
    cleanup: () => rm(directory, { recursive: true, force: true }),
  };
});
