/**
 * zstd frame boundaries (RFC 8878 §3.1), read from headers only: the zstd binding decompresses whole
 * buffers, so a stream is cut into whole frames before decompressing. Pure logic.
 */

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

export class ZstdFrameError extends Error {}

/** A compressed block regenerates at most this many bytes (RFC 8878 §3.1.1.2.4, Block_Maximum_Size). */
const MAX_BLOCK_CONTENT_BYTES = 128 * 1024;

/**
 * The length of the frame that starts at `offset`, or undefined when `bytes` ends before the frame
 * does. Throws ZstdFrameError on bytes that are not a zstd frame, and on a frame whose blocks may
 * decompress to more than `maxContentBytes` (checked from the block headers read so far, before
 * the frame is whole or decompressed: a zstd bomb of RLE blocks is refused from a few bytes).
 */
export function zstdFrameLength(bytes: Uint8Array, offset = 0, maxContentBytes = Number.POSITIVE_INFINITY): number | undefined {
  return zstdFrame(bytes, offset, maxContentBytes)?.length;
}

export interface ZstdFrame {
  /** Bytes of the frame. */
  length: number;
  /** The most its blocks decompress to. */
  contentBound: number;
}

/** zstdFrameLength with the frame's decompressed bound too. */
export function zstdFrame(bytes: Uint8Array, offset = 0, maxContentBytes = Number.POSITIVE_INFINITY): ZstdFrame | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const available = bytes.length - offset;
  if (available < 4) return undefined;
  const magic = view.getUint32(offset, true);
  if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
    if (available < 8) return undefined;
    const length = 8 + view.getUint32(offset + 4, true);
    return available >= length ? { length, contentBound: 0 } : undefined;
  }
  if (magic !== ZSTD_MAGIC) throw new ZstdFrameError(`not a zstd frame at byte ${offset} (magic 0x${magic.toString(16)})`);
  if (available < 5) return undefined;
  const descriptor = bytes[offset + 4]!;
  const singleSegment = (descriptor >> 5) & 1;
  const checksum = (descriptor >> 2) & 1;
  const dictionaryIdBytes = [0, 1, 2, 4][descriptor & 3]!;
  const fcsFlag = descriptor >> 6;
  const contentSizeBytes = fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag]!;
  if ((descriptor >> 3) & 1) throw new ZstdFrameError(`zstd frame at byte ${offset}: reserved header bit set`);
  let position = offset + 5 + (singleSegment ? 0 : 1) + dictionaryIdBytes + contentSizeBytes;
  let contentBound = 0;
  for (;;) {
    if (bytes.length < position + 3) return undefined;
    const header = bytes[position]! | (bytes[position + 1]! << 8) | (bytes[position + 2]! << 16);
    const last = header & 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new ZstdFrameError(`zstd frame at byte ${offset}: reserved block type`);
    // Raw and RLE blocks regenerate exactly `size` bytes, a compressed block at most Block_Maximum_Size.
    contentBound += type === 2 ? MAX_BLOCK_CONTENT_BYTES : size;
    if (contentBound > maxContentBytes) {
      throw new ZstdFrameError(`zstd frame at byte ${offset}: may decompress to more than ${maxContentBytes} bytes`);
    }
    position += 3 + (type === 1 ? 1 : size); // an RLE block stores its one byte
    if (last) break;
  }
  position += checksum ? 4 : 0;
  return bytes.length >= position ? { length: position - offset, contentBound } : undefined;
}
