/**
 * The data-directory side of disk faults: the typed error a node refuses to start with when its
 * write-ahead log cannot be trusted, and the durable marker of a rejoin in progress.
 *
 * `synod start --rejoin` (SynodNodeOptions.rejoin) rebuilds a node from its peers: it writes the
 * marker `DIR/REJOIN` (fsync'd, directory fsync'd), then moves the log `DIR/wal` aside to
 * `DIR/wal.damaged-<time>` (kept for inspection; delete it when done), and starts the replica in
 * rejoin mode (see `Replica`, "Rejoin"): it does not vote until it has learned everything that may
 * have been chosen with its lost votes. While the marker exists every start is a rejoin, so a
 * crash in the middle resumes it; the node removes the marker only after its finishing promise is
 * durable. Never delete the marker by hand, and never wipe `DIR/wal` and start normally: a member
 * that forgets what it promised or accepted can let two values be chosen for one slot.
 */
import { open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageCorruptionError } from '../storage/errors.js';

export const REJOIN_MARKER = 'REJOIN';
export const WAL_DIRECTORY = 'wal';

/**
 * The node's log is damaged where a crash cannot have damaged it (see `storage/recovery.ts`): a
 * record that may have been acknowledged fails its checksum, a header is bad, a segment is missing.
 * The node refuses to start rather than apply, serve or vote on data it cannot trust.
 */
export class DataCorruptionError extends Error {
  override readonly name = 'DataCorruptionError';
  /** The damaged file (full path). */
  readonly file: string;
  /** Byte offset of the damage within `file`. */
  readonly offset: number;
  /** What to do about it. */
  readonly remedy: string;

  constructor(nodeId: number, dataDir: string, cause: StorageCorruptionError) {
    const remedy =
      'The other members keep serving as long as a majority of the cluster is up. To rebuild this node from its ' +
      'peers, start it again with --rejoin (synod start ... --rejoin) while every other member is running: the ' +
      `damaged log is moved aside under ${dataDir}, and the node votes again only once it has relearned everything ` +
      'it may have promised or accepted. Do not delete the log and start without --rejoin.';
    super(`node ${nodeId} refuses to start: ${cause.message}. ${remedy}`, { cause });
    this.file = cause.file;
    this.offset = cause.offset;
    this.remedy = remedy;
  }
}

/** True while a rejoin is in progress in `dataDir` (the marker exists). */
export async function rejoinPending(dataDir: string): Promise<boolean> {
  try {
    await stat(join(dataDir, REJOIN_MARKER));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Starts a rejoin: the marker is made durable first, then the log is moved aside (a crash between
 * the two leaves the marker, so the next start is still a rejoin). Returns where the old log went,
 * or null if there was none.
 */
export async function beginRejoin(dataDir: string, now: Date): Promise<string | null> {
  const marker = join(dataDir, REJOIN_MARKER);
  const staged = `${marker}.tmp`;
  await writeFile(staged, `rejoin started ${now.toISOString()}; removed by the node once it has rejoined\n`, { mode: 0o600 });
  await syncPath(staged);
  await rename(staged, marker);
  await syncPath(dataDir);
  const wal = join(dataDir, WAL_DIRECTORY);
  const aside = join(dataDir, `${WAL_DIRECTORY}.damaged-${now.toISOString().replace(/[:.]/g, '-')}`);
  try {
    await rename(wal, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  await syncPath(dataDir);
  return aside;
}

/** Ends a rejoin: removes the marker durably. Call only once the finishing promise is durable. */
export async function endRejoin(dataDir: string): Promise<void> {
  await unlink(join(dataDir, REJOIN_MARKER));
  await syncPath(dataDir);
}

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
