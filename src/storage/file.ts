/**
 * The durable file adapter: an append-only, segmented write-ahead log with group commit.
 *
 * Layout and recovery rules are in `segment.ts` and `recovery.ts`. The log is the single source of
 * truth: the acceptor's promised ballot is just a `promise` record in it (replay keeps the last
 * one), so there is no second file whose update could be torn apart from the log's.
 *
 * Group commit: appends issued while a write+fdatasync is in flight queue up, and the next round
 * writes all of them with one `writev` and covers them with one `fdatasync`. Each append's promise
 * resolves only after the fdatasync that covers its records. An I/O error fails that round and
 * every later append: after a failed fsync the kernel may have dropped the dirty pages, so retrying
 * could report durable what is not (the PostgreSQL "fsyncgate" lesson); reopening re-reads the disk.
 *
 * One process per directory: the adapter takes no lock, the driver must not open a directory twice.
 */
import { type FileHandle, mkdir, open, rename } from 'node:fs/promises';
import { closeSync, fdatasyncSync, openSync, readSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '../core/assert.js';
import type { LogEntry, PersistRecord, PersistentState } from '../core/multipaxos/types.js';
import { type Durability, FIRST_SLOT_DEFAULT, LAZY_FLUSH_MS, type LogStorage, RecordChecker } from './adapter.js';
import { canonicalWriter } from '../codec/canonical.js';
import { decodeRecord, encodeRecord, isWritableRecord, writeRecord } from './codec.js';
import { StorageCorruptionError, StorageDecodeError, StorageUsageError } from './errors.js';
import type { MemoryLogStore } from './memory.js';
import { WalIndex } from './wal-index.js';
import { type StorageLogger, recoverLog, truncateFile } from './recovery.js';
import {
  FORMAT_VERSION,
  FRAME_HEADER_BYTES,
  FRAME_TRAILER_BYTES,
  type FrameFormat,
  SEGMENT_HEADER_BYTES,
  encodeFrame,
  encodeSegmentHeader,
  frameBytes,
  frameFormat,
  readWholeFrame,
  sealFrame,
  segmentName,
} from './segment.js';

export type { StorageLogger } from './recovery.js';

/** Options of `FileStorage.open`; every limit has a default. */
export interface FileStorageOptions {
  /** A segment is sealed and a new one started before it would grow past this. Default 64 MiB. */
  readonly segmentBytesMax?: number;
  /** Largest record payload; a longer length field on disk is corruption. Default 16 MiB. */
  readonly recordBytesMax?: number;
  /** Bytes queued behind the in-flight write before appends are refused. Default 256 MiB. */
  readonly pendingBytesMax?: number;
  /** First slot of a new log; an existing log must match it (see `FileStorage.open`). Default 1. */
  readonly firstSlot?: number;
  /** Receives repair warnings (a torn tail truncated). Default `console.warn`. */
  readonly logger?: StorageLogger;
  /**
   * Write and fdatasync on the calling thread while the disk's recent fsyncs took less than this
   * (ms); 0: always through libuv's thread pool. Default `BLOCKING_SYNC_MAX_MS_DEFAULT`.
   */
  readonly blockingSyncMaxMs?: number;
  /**
   * Zero bytes written ahead of the records, in the same write, whenever the records reach the
   * end of what the segment file already holds (0: none; the file grows with every append).
   * Default `PREALLOCATE_BYTES_DEFAULT`.
   */
  readonly preallocateBytes?: number;
}

/** Counters for tests and status pages: how well group commit coalesces. */
export interface FileStorageStats {
  /** `append` calls accepted. */
  readonly appends: number;
  /** `fdatasync` calls made for appended records. */
  readonly fsyncs: number;
  /** Frame bytes written (headers, payloads and trailers). */
  readonly bytes: number;
}

export const SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/**
 * A write + fdatasync through the thread pool costs four thread handoffs, each a wake-up of a
 * sleeping thread (tens of µs on a VM). On a healthy disk the fsync takes well under a
 * millisecond, so doing it on the event loop's thread is cheaper and faster (one-client put p50
 * 0.86 -> 0.73 ms here) and blocks the loop only that long. Once an fsync takes longer than this
 * the storage goes back to the thread pool (the loop keeps serving heartbeats and reads while a
 * slow disk works), and returns when the disk is fast again. Rounds that nobody waits for (lazy
 * records only) always use the thread pool.
 */
export const BLOCKING_SYNC_MAX_MS_DEFAULT = 2;
/**
 * An fdatasync after an append that grows the file must also commit the new file size (an ext4
 * journal commit); one after overwriting bytes the file already holds need not. So the segment is
 * grown ahead of its records in zero-filled steps: measured here, two processes each writing 5 KB
 * and fdatasyncing at once took 0.45 ms per round appending and 0.24 ms overwriting zeros. A step
 * of 256 KiB costs one round about 0.4 ms more (1 MiB would cost ~5 ms: a visible stall). Recovery
 * reads an all-zero tail as space, not records (`recovery.ts`).
 */
export const PREALLOCATE_BYTES_DEFAULT = 256 * 1024;
export const RECORD_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
export const PENDING_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Records queued for the next group-commit round. */
interface Batch {
  readonly frames: Uint8Array[];
  readonly records: PersistRecord[];
  bytes: number;
  readonly waiters: Waiter[];
  /** Someone waits for this batch (a `sync` append is in it): its round starts at once. */
  sync: boolean;
}

interface OpenSegment {
  readonly path: string;
  readonly handle: FileHandle;
  /** Valid bytes in the file: where the next frame goes. */
  byteLength: number;
  /** The file's size: past `byteLength` it holds zeros written ahead (preallocation). */
  allocatedLength: number;
}

interface Limits {
  readonly segmentBytesMax: number;
  readonly recordBytesMax: number;
  readonly pendingBytesMax: number;
  readonly blockingSyncMaxMs: number;
  readonly preallocateBytes: number;
}

/** Zeros for preallocation, shared and never written to. */
let zeroChunk: Buffer = Buffer.alloc(0);

function zeros(byteLength: number): Buffer {
  if (zeroChunk.byteLength < byteLength) zeroChunk = Buffer.alloc(byteLength);
  return zeroChunk.subarray(0, byteLength);
}

/** A segment file of the log; its ordinal is its position in `FileStorage.segmentFiles`. */
interface SegmentFile {
  readonly path: string;
  readonly format: FrameFormat;
}

/**
 * A `LogStorage` on a directory of write-ahead log segments. In memory it keeps where each slot's
 * entry is (`WalIndex`), not the entries: `entry` reads one back with a single pread.
 */
export class FileStorage implements LogStorage {
  private pending: Batch | null = null;
  private inFlight: Batch | null = null;
  private flushing: Promise<void> | null = null;
  /** Starts a round for lazy records that no sync append came to carry. */
  private lazyTimer: NodeJS.Timeout | null = null;
  private failure: unknown = null;
  private closed = false;
  private readonly counters = { appends: 0, fsyncs: 0, bytes: 0 };
  /** The last write + fdatasync's duration (ms): decides how the next one is done. */
  private lastSyncMs = 0;
  private readonly blockingSyncMaxMs: number;
  private readonly checker: RecordChecker;
  /** Sequence number of the next record framed by `append` (frames carry their number). */
  private encodedSequence: number;
  /** A sealed segment opened for `entry` reads (the last one read). */
  private reader: { readonly ordinal: number; readonly fd: number } | null = null;

  private constructor(
    private readonly directory: string,
    private readonly limits: Limits,
    private readonly index: WalIndex,
    /** The state replayed on open, handed to `state()` until the first append (then dropped). */
    private initial: MemoryLogStore | null,
    /** Every segment file in order; the last is `segment`, the one appended to. */
    private readonly segmentFiles: SegmentFile[],
    private segment: OpenSegment,
    private nextSequence: number,
    readonly firstSlot: number,
  ) {
    this.checker = new RecordChecker(index, firstSlot);
    this.blockingSyncMaxMs = limits.blockingSyncMaxMs;
    this.encodedSequence = nextSequence;
  }

  /**
   * Opens (creating if needed) the log in `directory` and replays it. `options.firstSlot` sets the
   * first slot of a new log; for an existing log it must be absent or equal to the stored one.
   * Throws `StorageCorruptionError` when the log cannot be trusted (see `recovery.ts`).
   */
  static async open(directory: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    const limits = checkLimits(options);
    const logger = options.logger ?? { warn: (message: string) => console.warn(message) };
    await mkdir(directory, { recursive: true });
    const recovered = await recoverLog(directory, limits.recordBytesMax, logger);
    if (recovered.lastSegment === null || recovered.firstSlot === null || recovered.index === null) {
      const firstSlot = options.firstSlot ?? FIRST_SLOT_DEFAULT;
      if (!Number.isSafeInteger(firstSlot) || firstSlot < 1) throw new StorageUsageError('firstSlot must be >= 1');
      const handle = await createSegment(directory, 0, firstSlot);
      const segment = { path: join(directory, segmentName(0)), handle, byteLength: SEGMENT_HEADER_BYTES, allocatedLength: SEGMENT_HEADER_BYTES };
      const files = [{ path: segment.path, format: frameFormat(FORMAT_VERSION) }];
      return new FileStorage(directory, limits, new WalIndex(firstSlot), recovered.store, files, segment, 0, firstSlot);
    }
    const files = [...recovered.segments];
    if (options.firstSlot !== undefined && options.firstSlot !== recovered.firstSlot) {
      throw new StorageUsageError(`log starts at slot ${recovered.firstSlot}, not ${options.firstSlot}`);
    }
    const { path, byteLength, version } = recovered.lastSegment;
    if (version !== FORMAT_VERSION) {
      // Frames of the current format never go into an older segment: seal it where its records
      // end (durably, before the next segment exists) and start a new one.
      await truncateFile(path, byteLength);
      const handle = await createSegment(directory, recovered.nextSequence, recovered.firstSlot);
      const segment = { path: join(directory, segmentName(recovered.nextSequence)), handle, byteLength: SEGMENT_HEADER_BYTES, allocatedLength: SEGMENT_HEADER_BYTES };
      files.push({ path: segment.path, format: frameFormat(FORMAT_VERSION) });
      return new FileStorage(directory, limits, recovered.index, recovered.store, files, segment, recovered.nextSequence, recovered.firstSlot);
    }
    const handle = await open(path, 'r+');
    const allocatedLength = Math.max(byteLength, (await handle.stat()).size);
    const segment = { path, handle, byteLength, allocatedLength };
    return new FileStorage(directory, limits, recovered.index, recovered.store, files, segment, recovered.nextSequence, recovered.firstSlot);
  }

  /**
   * Where the last completed fdatasync ended: the current segment and its durable length. Every
   * earlier segment is complete and durable; bytes past this point may not survive a power loss.
   * For tests that simulate one (nothing on the write path reads it).
   */
  durableEnd(): { readonly file: string; readonly byteLength: number } {
    return { file: this.segment.path, byteLength: this.segment.byteLength };
  }

  /** A copy of the counters. */
  get stats(): FileStorageStats {
    return { ...this.counters };
  }

  append(records: readonly PersistRecord[], durability: Durability = 'sync'): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new StorageUsageError('append after close'));
    let frames: Uint8Array[];
    try {
      frames = this.encode(records);
      this.checker.check(records); // last: it records the batch as queued
    } catch (error) {
      return Promise.reject(error);
    }
    this.encodedSequence += frames.length;
    this.counters.appends += 1;
    this.initial = null; // stale from now on: `state()` reads the disk
    if (records.length === 0 && this.pending === null && this.flushing === null) return Promise.resolve();
    const batch = (this.pending ??= { frames: [], records: [], bytes: 0, waiters: [], sync: false });
    if (durability === 'sync') batch.sync = true;
    for (const frame of frames) {
      batch.frames.push(frame);
      batch.bytes += frame.byteLength;
    }
    batch.records.push(...records);
    const durable = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    this.startRound(batch.sync);
    return durable;
  }

  /**
   * Starts the group-commit loop unless it runs: on a microtask when someone waits (so appends
   * issued in the same synchronous run share the round), else after `LAZY_FLUSH_MS`.
   */
  private startRound(now: boolean): void {
    if (this.flushing !== null) return; // the running loop takes what is pending
    if (!now) {
      this.lazyTimer ??= setTimeout(() => {
        this.lazyTimer = null;
        this.startRound(true);
      }, LAZY_FLUSH_MS);
      return;
    }
    if (this.lazyTimer !== null) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
    this.flushing = Promise.resolve().then(() => this.flushLoop());
  }

  state(): PersistentState {
    if (this.initial !== null) return this.initial.state();
    const entries: LogEntry[] = [];
    for (const slot of this.index.slots()) {
      const entry = this.entry(slot);
      if (entry !== undefined) entries.push(entry);
    }
    return { promised: this.index.promised, entries };
  }

  /**
   * The durable entry at `slot`, its value read back from the frame that carries it (one pread,
   * its checksum verified). Throws `StorageCorruptionError` if those bytes no longer hold it.
   */
  entry(slot: number): LogEntry | undefined {
    if (this.closed && this.flushing === null) throw new StorageUsageError('read after close');
    const location = this.index.locate(slot);
    if (location === undefined) return undefined;
    const file = this.segmentFiles[location.segment];
    assert(file !== undefined, 'an indexed frame is in a known segment');
    const bytes = Buffer.allocUnsafe(location.frameBytes);
    const read = readSync(this.readFd(location.segment), bytes, 0, location.frameBytes, location.offset);
    const corrupt = (reason: string): StorageCorruptionError => new StorageCorruptionError(file.path, location.offset, `reading back slot ${slot}: ${reason}`);
    if (read !== location.frameBytes) throw corrupt(`the file ends ${location.frameBytes - read} bytes into the frame`);
    const payload = readWholeFrame(bytes, this.limits.recordBytesMax, file.format);
    if (typeof payload === 'string') throw corrupt(payload);
    let record: PersistRecord;
    try {
      record = decodeRecord(payload);
    } catch (error) {
      if (error instanceof StorageDecodeError) throw corrupt(error.message);
      throw error;
    }
    if (record.type === 'promise' || record.slot !== slot || record.value === undefined) throw corrupt('the frame holds no value for this slot');
    return { slot, ballot: location.ballot, value: record.value, chosen: location.chosen };
  }

  /** A descriptor to read segment `ordinal` with: the open segment's own, or a sealed one's. */
  private readFd(ordinal: number): number {
    if (ordinal === this.segmentFiles.length - 1) return this.segment.handle.fd;
    if (this.reader?.ordinal === ordinal) return this.reader.fd;
    this.closeReader();
    const file = this.segmentFiles[ordinal];
    assert(file !== undefined, 'a sealed segment to read');
    this.reader = { ordinal, fd: openSync(file.path, 'r') };
    return this.reader.fd;
  }

  private closeReader(): void {
    if (this.reader === null) return;
    closeSync(this.reader.fd);
    this.reader = null;
  }

  /** Waits until every accepted append is durable (or failed), then closes the segment file. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pending !== null) this.startRound(true);
    // Bounded: no append is accepted after `closed`, so at most the current round and one more run.
    while (this.flushing !== null) await this.flushing;
    this.closeReader();
    await this.segment.handle.close();
  }

  /** Frames `records`, refusing oversized records and a queue past `pendingBytesMax`. */
  private encode(records: readonly PersistRecord[]): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let bytes = 0;
    let sequence = this.encodedSequence;
    for (const record of records) {
      const frame = encodeRecordFrame(record, sequence);
      const payloadBytes = frame.byteLength - frameBytes(0);
      if (payloadBytes > this.limits.recordBytesMax) {
        throw new StorageUsageError(`record of ${payloadBytes} bytes exceeds ${this.limits.recordBytesMax}`);
      }
      sequence += 1;
      bytes += frame.byteLength;
      frames.push(frame);
    }
    const queuedBytes = this.pending?.bytes ?? 0;
    if (queuedBytes > 0 && queuedBytes + bytes > this.limits.pendingBytesMax) {
      throw new StorageUsageError(`append queue full (${queuedBytes} bytes pending); wait for earlier appends`);
    }
    return frames;
  }

  /** Runs group-commit rounds until nothing is queued; never rejects (failures go to waiters). */
  private async flushLoop(): Promise<void> {
    try {
      // Each round takes everything queued so far; the loop ends when a round finds nothing new
      // that anyone waits for (lazy leftovers get their own timer). The first round always runs.
      let first = true;
      while (this.pending !== null && (first || this.pending.sync || this.closed)) {
        first = false;
        const batch = this.pending;
        this.pending = null;
        this.inFlight = batch;
        // Still in flight until indexed (`writeBatch` indexes each group once durable): if that
        // throws, the catch below fails its waiters.
        await this.writeBatch(batch);
        this.inFlight = null;
        if (this.pending === null) this.checker.drained();
        for (const waiter of batch.waiters) waiter.resolve();
      }
    } catch (error) {
      this.failure = error;
      for (const batch of [this.inFlight, this.pending]) {
        for (const waiter of batch?.waiters ?? []) waiter.reject(error);
      }
      this.inFlight = null;
      this.pending = null;
    } finally {
      this.flushing = null;
    }
    if (this.pending !== null) this.startRound(this.pending.sync);
  }

  /** Writes a batch, one write and one fdatasync per segment it touches, rotating as needed. */
  private async writeBatch(batch: Batch): Promise<void> {
    const { frames } = batch;
    let index = 0;
    // Bounded: every iteration writes at least one frame.
    while (index < frames.length) {
      const first = frames[index];
      assert(first !== undefined, 'frame index in range');
      const segmentHasRecords = this.segment.byteLength > SEGMENT_HEADER_BYTES;
      if (segmentHasRecords && this.segment.byteLength + first.byteLength > this.limits.segmentBytesMax) {
        await this.rotate();
      }
      const end = this.framesThatFit(frames, index);
      const group = frames.slice(index, end);
      let bytes = 0;
      for (const frame of group) bytes += frame.byteLength;
      // Grow the file ahead in the same write (and fdatasync) when these frames reach its end.
      const frameEnd = this.segment.byteLength + bytes;
      const padding = frameEnd > this.segment.allocatedLength
        ? Math.max(0, Math.min(this.limits.preallocateBytes, this.limits.segmentBytesMax - frameEnd))
        : 0;
      const buffers = padding > 0 ? [...group, zeros(padding)] : group;
      const started = performance.now();
      // A round nobody waits for (lazy records only: a leader's own acceptances and chosen marks)
      // goes through the thread pool: blocking the loop for it would delay the work that is
      // waited for (proposals, answers) by a whole write + fdatasync.
      if (batch.sync && this.lastSyncMs < this.blockingSyncMaxMs) {
        writeAllSync(this.segment.handle.fd, buffers, this.segment.byteLength);
        fdatasyncSync(this.segment.handle.fd);
      } else {
        await writeAll(this.segment.handle, buffers, this.segment.byteLength);
        await this.segment.handle.datasync();
      }
      // A lazy round's time includes waiting for the loop to take its completion: not the disk's.
      if (batch.sync) this.lastSyncMs = performance.now() - started;
      this.counters.fsyncs += 1;
      this.counters.bytes += bytes;
      const ordinal = this.segmentFiles.length - 1;
      let offset = this.segment.byteLength;
      for (let frame = index; frame < end; frame += 1) {
        const frameLength = (frames[frame] as Uint8Array).byteLength;
        this.index.apply(batch.records[frame] as PersistRecord, ordinal, offset, frameLength);
        offset += frameLength;
      }
      this.segment.byteLength += bytes;
      this.segment.allocatedLength = Math.max(this.segment.allocatedLength, frameEnd + padding);
      this.nextSequence += group.length;
      index = end;
    }
  }

  /** End index of the run of frames from `start` that fits the current segment (at least one). */
  private framesThatFit(frames: readonly Uint8Array[], start: number): number {
    let byteLength = this.segment.byteLength + (frames[start]?.byteLength ?? 0);
    let end = start + 1;
    while (end < frames.length) {
      const next = frames[end]?.byteLength ?? 0;
      if (byteLength + next > this.limits.segmentBytesMax) break;
      byteLength += next;
      end += 1;
    }
    return end;
  }

  /**
   * Seals the current segment (already fdatasync'd) and starts the next at `nextSequence`. A
   * sealed segment ends exactly at its last record: the zeros written ahead are cut off (and the
   * new size made durable) before the next segment exists, so recovery can keep treating any bad
   * bytes in a sealed segment as corruption.
   */
  private async rotate(): Promise<void> {
    if (this.segment.allocatedLength > this.segment.byteLength) {
      await this.segment.handle.truncate(this.segment.byteLength);
      await this.segment.handle.datasync();
      this.segment.allocatedLength = this.segment.byteLength;
    }
    await this.segment.handle.close();
    const handle = await createSegment(this.directory, this.nextSequence, this.firstSlot);
    const path = join(this.directory, segmentName(this.nextSequence));
    this.segment = { path, handle, byteLength: SEGMENT_HEADER_BYTES, allocatedLength: SEGMENT_HEADER_BYTES };
    this.segmentFiles.push({ path, format: frameFormat(FORMAT_VERSION) });
  }
}

/**
 * One record framed as record `sequence`: written straight into its frame by the canonical writer
 * (no msgpackr pass, no copy of the payload into the frame), or, for a record that writer does not
 * take, packed and framed as before. The bytes are the same either way.
 */
export function encodeRecordFrame(record: PersistRecord, sequence: number): Uint8Array {
  if (!isWritableRecord(record)) return encodeFrame(encodeRecord(record), sequence);
  const frame = writeRecord(canonicalWriter.begin(FRAME_HEADER_BYTES), record).space(FRAME_TRAILER_BYTES).finish();
  return sealFrame(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength), sequence);
}

function checkLimits(options: FileStorageOptions): Limits {
  const limits = {
    segmentBytesMax: options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT,
    recordBytesMax: options.recordBytesMax ?? RECORD_BYTES_MAX_DEFAULT,
    pendingBytesMax: options.pendingBytesMax ?? PENDING_BYTES_MAX_DEFAULT,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new StorageUsageError(`${name} must be a positive integer`);
  }
  // The u32 length field bounds a record; a segment must hold its header plus one frame.
  if (limits.recordBytesMax > 0xffffffff) throw new StorageUsageError('recordBytesMax must fit in 32 bits');
  if (limits.segmentBytesMax < SEGMENT_HEADER_BYTES + frameBytes(1)) {
    throw new StorageUsageError('segmentBytesMax must hold a segment header plus a one-byte record frame');
  }
  const blockingSyncMaxMs = options.blockingSyncMaxMs ?? BLOCKING_SYNC_MAX_MS_DEFAULT;
  if (!Number.isFinite(blockingSyncMaxMs) || blockingSyncMaxMs < 0) throw new StorageUsageError('blockingSyncMaxMs must be a non-negative number');
  const preallocateBytes = options.preallocateBytes ?? PREALLOCATE_BYTES_DEFAULT;
  if (!Number.isSafeInteger(preallocateBytes) || preallocateBytes < 0) throw new StorageUsageError('preallocateBytes must be a non-negative integer');
  return { ...limits, blockingSyncMaxMs, preallocateBytes };
}

/**
 * Creates a segment so that it is never visible half-made: header written and fsync'd under a
 * temporary name, renamed into place, directory fsync'd so the rename itself survives a crash.
 */
async function createSegment(directory: string, firstSequence: number, firstSlot: number): Promise<FileHandle> {
  const path = join(directory, segmentName(firstSequence));
  const temporaryPath = `${path}.tmp`;
  const temporary = await open(temporaryPath, 'w');
  try {
    await writeAll(temporary, [encodeSegmentHeader({ firstSequence, firstSlot })], 0);
    await temporary.sync();
  } finally {
    await temporary.close();
  }
  await rename(temporaryPath, path);
  const directoryHandle = await open(directory, 'r');
  try {
    await directoryHandle.sync();
  } finally {
    await directoryHandle.close();
  }
  return open(path, 'r+');
}

/** Writes `buffers` at `position` with one writev, finishing a short write; returns the byte count. */
async function writeAll(handle: FileHandle, buffers: readonly Uint8Array[], position: number): Promise<number> {
  const total = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
  const { bytesWritten } = await handle.writev([...buffers], position);
  let written = bytesWritten;
  if (written < total) {
    const rest = Buffer.concat([...buffers]);
    // Bounded: each short write makes progress or throws.
    while (written < total) {
      const result = await handle.write(rest, written, total - written, position + written);
      assert(result.bytesWritten > 0, 'a write makes progress');
      written += result.bytesWritten;
    }
  }
  return total;
}

/** `writeAll` on the calling thread: one writev, finishing a short write. */
function writeAllSync(fd: number, buffers: readonly Uint8Array[], position: number): number {
  const total = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
  let written = writevSync(fd, buffers as Uint8Array[], position);
  // Bounded: each short write makes progress or throws.
  while (written < total) {
    const rest = Buffer.concat([...buffers]).subarray(written);
    const more = writevSync(fd, [rest], position + written);
    assert(more > 0, 'a write makes progress');
    written += more;
  }
  return total;
}
