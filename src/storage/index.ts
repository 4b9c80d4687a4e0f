/** The storage adapters: the `LogStorage` contract, the memory adapter and the durable file adapter. */
export { FIRST_SLOT_DEFAULT, type LogStorage, MemoryStorage } from './adapter.js';
export { StorageCorruptionError, StorageDecodeError, StorageUsageError } from './errors.js';
export {
  FileStorage,
  type FileStorageOptions,
  type FileStorageStats,
  PENDING_BYTES_MAX_DEFAULT,
  RECORD_BYTES_MAX_DEFAULT,
  SEGMENT_BYTES_MAX_DEFAULT,
  type StorageLogger,
} from './file.js';
export { MemoryLogStore } from './memory.js';
