/**
 * The binary client protocol (see `wire.ts` for the format): pure encoders and validating
 * decoders shared by the server's `ClientListener` and the `SynodClient` library.
 */
export {
  HELLO_FRAME_BYTES_MAX,
  MESSAGE_BYTES_MAX,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  REQUEST_FRAME_BYTES_MAX_DEFAULT,
  REQ_ID_MAX,
  RESPONSE_FRAME_BYTES_MAX,
  TOKEN_BYTES_MAX,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  sanitizeMessage,
} from './wire.js';
export type {
  ClientMessage,
  FailureMessage,
  HelloMessage,
  RequestMessage,
  ResultMessage,
  ServerMessage,
  StatusMessage,
  StatusRequestMessage,
  WelcomeMessage,
} from './wire.js';
export { ProtocolDecodeError } from './reader.js';
export { ADDRESS_BYTES_MAX } from './status.js';
