/**
 * A zstd bomb: one frame of RLE blocks (RFC 8878 §3.1.1.2), each 4 bytes that regenerate 128 KiB of
 * `byte`, so ~8 KB decompress to 256 MiB. No compressor writes this; a hostile store object could.
 */
const RLE_BLOCK_BYTES = 128 * 1024;

export function zstdRleFrame(contentBytes: number, byte = 0x41): Buffer {
  if (contentBytes <= 0 || contentBytes % RLE_BLOCK_BYTES !== 0) throw new Error(`contentBytes must be a positive multiple of ${RLE_BLOCK_BYTES}`);
  const blocks = contentBytes / RLE_BLOCK_BYTES;
  // Magic, frame header descriptor 0 (no content size, no checksum), window descriptor 0x38 (128 KiB).
  const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]);
  const body = Buffer.alloc(blocks * 4);
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    body.writeUIntLE(last | (1 << 1) | (RLE_BLOCK_BYTES << 3), i * 4, 3); // type 1 = RLE
    body[i * 4 + 3] = byte;
  }
  return Buffer.concat([header, body]);
}
