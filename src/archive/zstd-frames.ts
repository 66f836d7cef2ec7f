/**
 * zstd frame boundaries (RFC 8878 §3.1), read from headers only: the zstd binding decompresses whole
 * buffers, so a stream is cut into whole frames before decompressing. Pure logic.
 */

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

export class ZstdFrameError extends Error {}

/**
 * The length of the frame that starts at `offset`, or undefined when `bytes` ends before the frame
 * does. Throws ZstdFrameError on bytes that are not a zstd frame.
 */
export function zstdFrameLength(bytes: Uint8Array, offset = 0): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const available = bytes.length - offset;
  if (available < 4) return undefined;
  const magic = view.getUint32(offset, true);
  if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
    if (available < 8) return undefined;
    const length = 8 + view.getUint32(offset + 4, true);
    return available >= length ? length : undefined;
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
  for (;;) {
    if (bytes.length < position + 3) return undefined;
    const header = bytes[position]! | (bytes[position + 1]! << 8) | (bytes[position + 2]! << 16);
    const last = header & 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new ZstdFrameError(`zstd frame at byte ${offset}: reserved block type`);
    position += 3 + (type === 1 ? 1 : size); // an RLE block stores its one byte
    if (last) break;
  }
  position += checksum ? 4 : 0;
  return bytes.length >= position ? position - offset : undefined;
}
