import { MemoryStorage } from '../../src/storage/adapter.js';
import { MemoryLogStore } from '../../src/storage/memory.js';
import { runStorageConformance } from './conformance.js';

// One store per fixture stands in for the disk: reopening wraps the same store again.
runStorageConformance('memory', async () => {
  const store = new MemoryLogStore();
  return {
    open: async () => new MemoryStorage(store),
    cleanup: async () => {},
  };
});
