/**
 * An exclusive lock on a data directory: two processes appending to the same WAL would corrupt it
 * and break every promise the acceptor made. The lock is a file holding the owner's pid, created
 * atomically (link); a lock whose pid no longer runs (the owner was SIGKILLed) is taken over.
 */
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
}

const LOCK_FILE = 'LOCK';

export class DataDirLock {
  private released = false;

  private constructor(readonly path: string) {}

  static async acquire(directory: string): Promise<DataDirLock> {
    await mkdir(directory, { recursive: true });
    const path = join(directory, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt += 1) {
      // The pid is written to a private file first and linked into place: the lock file appears
      // atomically with its content, so a racing starter never reads it empty and calls it stale.
      const staged = `${path}.${process.pid}`;
      await writeFile(staged, `${process.pid}\n`, { mode: 0o600 });
      try {
        await link(staged, path);
        return new DataDirLock(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      } finally {
        await unlink(staged).catch(() => {});
      }
      const owner = Number.parseInt((await readFile(path, 'utf8').catch(() => '')).trim(), 10);
      if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isRunning(owner)) {
        throw new DataDirLockedError(`data directory ${directory} is in use by process ${owner} (${path})`);
      }
      await unlink(path).catch(() => {}); // stale: its owner is gone
    }
    throw new DataDirLockedError(`could not lock data directory ${directory} (${path})`);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await unlink(this.path).catch(() => {});
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
