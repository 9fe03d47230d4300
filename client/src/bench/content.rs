//! The bytes `harbour bench` writes: cheap to make and to check, and
//! different for every file and every chunk. A 64 KiB block of seeded
//! pseudo-random bytes is repeated, and the first 16 bytes of every 1 KiB
//! chunk are the file's index and the chunk's offset, so a chunk served
//! from the wrong file or the wrong place never compares equal.

use std::io::{self, Read};

use common::limits::CHUNK_SIZE_BYTES;
use common::rng::Rng;

/// Bytes of the repeated block, and of each piece a reader fills at once.
pub const BLOCK_BYTES: usize = 64 * 1024;

const _: () = assert!(BLOCK_BYTES.is_multiple_of(CHUNK_SIZE_BYTES));

pub struct Content {
    block: Vec<u8>,
}

impl Content {
    /// The block of a run, seeded by its prefix.
    pub fn new(seed_text: &str) -> Content {
        let seed = seed_text
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        let mut block = vec![0u8; BLOCK_BYTES];
        Rng::new(seed).fill(&mut block);
        Content { block }
    }

    /// Writes the bytes of file `index` from `offset` into `out`.
    fn fill(&self, index: u64, offset: u64, out: &mut [u8]) {
        let mut at = 0;
        while at < out.len() {
            let position = offset + at as u64;
            let in_chunk = (position % CHUNK_SIZE_BYTES as u64) as usize;
            let in_block = (position % BLOCK_BYTES as u64) as usize;
            let len = (CHUNK_SIZE_BYTES - in_chunk).min(out.len() - at);
            let piece = &mut out[at..at + len];
            piece.copy_from_slice(&self.block[in_block..in_block + len]);
            // The chunk's stamp: file index, then the chunk's offset.
            let mut stamp = [0u8; 16];
            stamp[..8].copy_from_slice(&index.to_le_bytes());
            stamp[8..].copy_from_slice(&(position - in_chunk as u64).to_le_bytes());
            if in_chunk < stamp.len() {
                let stamped = (stamp.len() - in_chunk).min(len);
                piece[..stamped].copy_from_slice(&stamp[in_chunk..in_chunk + stamped]);
            }
            at += len;
        }
    }
}

/// File `index`'s bytes as a reader, `size_bytes` long.
pub struct ContentReader<'a> {
    content: &'a Content,
    index: u64,
    offset: u64,
    size_bytes: u64,
}

impl<'a> ContentReader<'a> {
    pub fn new(content: &'a Content, index: u64, size_bytes: u64) -> ContentReader<'a> {
        ContentReader {
            content,
            index,
            offset: 0,
            size_bytes,
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let left = self.size_bytes - self.offset;
        let len = out
            .len()
            .min(BLOCK_BYTES)
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        self.content.fill(self.index, self.offset, &mut out[..len]);
        self.offset += len as u64;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use super::{Content, ContentReader};

    fn bytes(content: &Content, index: u64, size: u64, read_size: usize) -> Vec<u8> {
        let mut reader = ContentReader::new(content, index, size);
        let mut out = Vec::new();
        let mut piece = vec![0u8; read_size];
        loop {
            let read = reader.read(&mut piece).unwrap();
            if read == 0 {
                return out;
            }
            out.extend_from_slice(&piece[..read]);
        }
    }

    #[test]
    fn a_file_reads_the_same_in_any_pieces_and_differs_per_file_and_chunk() {
        let content = Content::new("bench-1/");
        let whole = bytes(&content, 3, 200_000, 1 << 20);
        assert_eq!(whole.len(), 200_000);
        assert_eq!(bytes(&content, 3, 200_000, 777), whole);
        assert_ne!(bytes(&content, 4, 200_000, 4096), whole);
        // Chunk 0 and chunk 64 share their block bytes but not their stamp.
        assert_ne!(whole[..1024], whole[64 * 1024..65 * 1024]);
        assert_eq!(whole[16..1024], whole[64 * 1024 + 16..65 * 1024]);
        assert!(bytes(&content, 3, 0, 10).is_empty());
    }
}
