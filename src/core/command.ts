/**
 * A client command as the replicated log carries it. The log treats `payload` as opaque bytes;
 * the state machine (for example `src/kv/`) decodes it. `(clientId, seq)` identifies the command
 * across retries so the state machine can apply it at most once and answer a retry with the
 * original result.
 */
export interface Command {
  /** Stable identity of the issuing client session. */
  readonly clientId: string;
  /** Per-client sequence number, increasing by one for each new command (retries reuse it). */
  readonly seq: number;
  /** The encoded operation. */
  readonly payload: Uint8Array;
}

/** Bytes a command costs in a batch (payload plus a fixed overhead for ids and framing). */
export function commandBytes(command: Command): number {
  return command.payload.byteLength + command.clientId.length + 16;
}
