/**
 * The child process of `crash.test.ts`: appends batches of records to a `FileStorage` forever and
 * prints `ack <slot>` after each append resolves (so every slot up to <slot> is durable), until the
 * parent kills it with SIGKILL. Restarted on the same directory, it continues after the highest
 * slot it finds, so each run also exercises recovery followed by appends.
 *
 * Importing this module does nothing (the test runner loads every compiled test file): it only
 * acts when run as the main script with a directory argument.
 */
import { pathToFileURL } from 'node:url';
import { makeBallot } from '../../src/core/ballot.js';
import type { PersistRecord } from '../../src/core/multipaxos/types.js';
import { FileStorage } from '../../src/storage/file.js';

/** Small segments, so crashes also land around rotations. */
export const CRASH_SEGMENT_BYTES_MAX = 32 * 1024;
/** Appends the writer keeps in flight, so group commit coalesces them. */
const APPENDS_IN_FLIGHT_MAX = 4;

/** The accept record the writer appends for `slot` (deterministic, so the parent can check it). */
export function crashAccept(slot: number): PersistRecord {
  const ballot = makeBallot(slot, 1);
  const payload = new Uint8Array(16 + ((slot * 37) % 700));
  payload.fill(slot % 256);
  return { type: 'accept', slot, ballot, value: { type: 'commands', epoch: ballot, commands: [{ clientId: 'crash', seq: slot, payload }] } };
}

/** The batch starting at `firstSlot`: a promise, then 1 to 7 accepts. */
function crashBatch(firstSlot: number): PersistRecord[] {
  const records: PersistRecord[] = [{ type: 'promise', ballot: makeBallot(firstSlot, 1) }];
  const acceptsCount = 1 + (firstSlot % 7);
  for (let slot = firstSlot; slot < firstSlot + acceptsCount; slot += 1) records.push(crashAccept(slot));
  return records;
}

async function run(directory: string): Promise<void> {
  const storage = await FileStorage.open(directory, {
    segmentBytesMax: CRASH_SEGMENT_BYTES_MAX,
    logger: { warn: (message) => process.stderr.write(`${message}\n`) },
  });
  let nextSlot = 1;
  for (const entry of storage.state().entries) nextSlot = Math.max(nextSlot, entry.slot + 1);
  const inFlight: Promise<void>[] = [];
  // Runs until killed; the in-flight queue is bounded by APPENDS_IN_FLIGHT_MAX.
  while (true) {
    const batch = crashBatch(nextSlot);
    const lastSlot = nextSlot + batch.length - 2;
    nextSlot = lastSlot + 1;
    inFlight.push(storage.append(batch).then(() => void process.stdout.write(`ack ${lastSlot}\n`)));
    if (inFlight.length >= APPENDS_IN_FLIGHT_MAX) await inFlight.shift();
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const directoryArgument = process.argv[2];
if (isMain && directoryArgument !== undefined) {
  run(directoryArgument).catch((error: unknown) => {
    process.stderr.write(`crash-writer failed: ${String(error)}\n`);
    process.exit(1);
  });
}
