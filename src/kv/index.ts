/**
 * The replicated key-value store: its operations and results with their binary codec, and the
 * deterministic state machine every replica applies the chosen log to.
 */
export {
  KEY_BYTES_MAX,
  VALUE_BYTES_MAX,
  LIST_LIMIT_MAX,
  KvDecodeError,
  decodeOperation,
  decodeResult,
  encodeOperation,
  encodeResult,
  isReadOperation,
  kvFailure,
  validateOperation,
} from './ops.js';
export type {
  KvCasOperation,
  KvCasResult,
  KvCurrent,
  KvDeleteOperation,
  KvDeleteResult,
  KvErrorCode,
  KvFailure,
  KvGetOperation,
  KvGetResult,
  KvListEntry,
  KvListOperation,
  KvListResult,
  KvOperation,
  KvPutOperation,
  KvPutResult,
  KvReadOperation,
  KvResult,
  KvSuccess,
} from './ops.js';
export {
  CLIENT_ID_BYTES_MAX,
  CLIENT_SESSIONS_MAX_DEFAULT,
  KvSnapshotError,
  KvStateMachine,
} from './state-machine.js';
export type { KvStateMachineOptions, KvStateMachineSize } from './state-machine.js';
export { compareKeys } from './sorted-keys.js';
