/**
 * Length-prefixed frames on a byte stream: `[u32 big-endian payload length][payload]`. TCP
 * delivers arbitrary chunks, so `FrameDecoder` reassembles frames across partial and concatenated
 * chunks. It rejects a length prefix above `frameBytesMax` before buffering a single payload byte,
 * so a peer cannot make us hold more than one maximum frame per connection.
 */
import { assert } from '../core/assert.js';
import { FrameTooLargeError } from './transport.js';

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;
/** The default largest payload accepted (16 MiB): far above any batch the core builds. */
export const FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
/** The largest payload a u32 prefix can describe. */
const FRAME_BYTES_LIMIT = 0xffff_ffff;

/** Prepends the length prefix to `payload` (one allocation, one copy). */
export function encodeFrame(payload: Uint8Array): Buffer {
  assert(payload.byteLength <= FRAME_BYTES_LIMIT, 'frame payload exceeds the u32 length prefix');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  frame.writeUInt32BE(payload.byteLength, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** Reassembles frames from stream chunks. After it throws, it stays failed: close the stream. */
export class FrameDecoder {
  /** Received bytes not yet returned as frames, oldest first. */
  private chunks: Buffer[] = [];
  private bufferedBytesCount = 0;
  /** The payload length of the frame being assembled, once its prefix has arrived. */
  private payloadBytesExpected: number | null = null;
  private failed = false;

  /** `frameBytesMax` bounds each payload; it may be raised later (after a handshake). */
  constructor(private frameBytesMaxCurrent: number = FRAME_BYTES_MAX_DEFAULT) {
    assert(Number.isSafeInteger(frameBytesMaxCurrent) && frameBytesMaxCurrent >= 0, 'frameBytesMax must be a non-negative integer');
    assert(frameBytesMaxCurrent <= FRAME_BYTES_LIMIT, 'frameBytesMax exceeds the u32 length prefix');
  }

  /** Bytes held, waiting for the rest of a frame. At most prefix + frameBytesMax + one chunk. */
  get bufferedBytes(): number {
    return this.bufferedBytesCount;
  }

  /** Changes the payload limit; used to allow full-size frames once a peer has authenticated. */
  set frameBytesMax(frameBytesMax: number) {
    assert(Number.isSafeInteger(frameBytesMax) && frameBytesMax >= 0 && frameBytesMax <= FRAME_BYTES_LIMIT, 'frameBytesMax out of range');
    this.frameBytesMaxCurrent = frameBytesMax;
  }

  get frameBytesMax(): number {
    return this.frameBytesMaxCurrent;
  }

  /**
   * Adds a chunk and returns the payloads of every frame it completes, in order. Throws
   * `FrameTooLargeError` as soon as a prefix announces more than `frameBytesMax`.
   */
  push(chunk: Uint8Array): Buffer[] {
    assert(!this.failed, 'FrameDecoder used after it failed');
    if (chunk.byteLength > 0) {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.bufferedBytesCount += chunk.byteLength;
    }
    const frames: Buffer[] = [];
    // Each iteration consumes at least the 4-byte prefix, so the loop ends within chunk/4 rounds.
    while (true) {
      if (this.payloadBytesExpected === null) {
        if (this.bufferedBytesCount < FRAME_HEADER_BYTES) break;
        const payloadBytes = this.take(FRAME_HEADER_BYTES).readUInt32BE(0);
        if (payloadBytes > this.frameBytesMaxCurrent) {
          this.failed = true;
          this.chunks = [];
          this.bufferedBytesCount = 0;
          throw new FrameTooLargeError(payloadBytes, this.frameBytesMaxCurrent);
        }
        this.payloadBytesExpected = payloadBytes;
      }
      if (this.bufferedBytesCount < this.payloadBytesExpected) break;
      frames.push(this.take(this.payloadBytesExpected));
      this.payloadBytesExpected = null;
    }
    return frames;
  }

  /** Removes and returns the first `bytes` buffered bytes; copies only when they span chunks. */
  private take(bytes: number): Buffer {
    assert(bytes <= this.bufferedBytesCount, 'take beyond buffered bytes');
    this.bufferedBytesCount -= bytes;
    const first = this.chunks[0];
    if (first !== undefined && first.byteLength >= bytes) {
      const taken = first.subarray(0, bytes);
      if (first.byteLength === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
      return taken;
    }
    const taken = Buffer.allocUnsafe(bytes);
    let filled = 0;
    while (filled < bytes) {
      const chunk = this.chunks[0];
      assert(chunk !== undefined, 'buffered byte count out of sync with chunks');
      const copied = Math.min(chunk.byteLength, bytes - filled);
      chunk.copy(taken, filled, 0, copied);
      filled += copied;
      if (copied === chunk.byteLength) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(copied);
    }
    return taken;
  }
}
