//! The batch wire format between naming and storage: many chunks per HTTP
//! body, each with its own CRC32C, so a batch costs one request, and a flipped
//! bit anywhere is caught before a chunk is stored or served.
//!
//! ```text
//! batch  = magic "HRBT" | version u8 = 1 | 3 reserved zero bytes | count u32 | frame*count
//! frame  = blob u64 | index u32 | len u32 (<= 1024) | crc32c(data) u32 | data[len]
//! ```
//! Integers are big-endian. A batch ends exactly after its last frame.

use std::fmt;
use std::io::{self, Read};

use crate::chunk::{BlobId, ChunkId, crc32c};
use crate::limits::{BATCH_CHUNKS_MAX, BATCH_HEADER_BYTES, CHUNK_SIZE_BYTES, FRAME_HEADER_BYTES};

pub const BATCH_MAGIC: [u8; 4] = *b"HRBT";
pub const BATCH_VERSION: u8 = 1;

/// One chunk as it travels: its id, its bytes and their CRC32C.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub id: ChunkId,
    pub crc: u32,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    BadMagic,
    UnsupportedVersion(u8),
    TooManyChunks { count: u32 },
    ChunkTooLarge { id: ChunkId, len: u32 },
    ChecksumMismatch { id: ChunkId },
    Truncated,
    TrailingBytes,
}

impl Chunk {
    /// A chunk whose CRC is computed from its bytes.
    pub fn new(id: ChunkId, data: Vec<u8>) -> Chunk {
        assert!(data.len() <= CHUNK_SIZE_BYTES);
        Chunk {
            id,
            crc: crc32c(&data),
            data,
        }
    }

    pub fn is_intact(&self) -> bool {
        crc32c(&self.data) == self.crc
    }
}

/// Builds one batch in memory; its size is bounded by `BATCH_BYTES_MAX`.
pub struct BatchEncoder {
    bytes: Vec<u8>,
    count_expected: u32,
    count_pushed: u32,
}

impl BatchEncoder {
    pub fn new(count: usize) -> BatchEncoder {
        assert!(count <= BATCH_CHUNKS_MAX);
        let count = u32::try_from(count).expect("BATCH_CHUNKS_MAX fits u32");
        let mut bytes = Vec::with_capacity(
            BATCH_HEADER_BYTES + count as usize * (FRAME_HEADER_BYTES + CHUNK_SIZE_BYTES),
        );
        bytes.extend_from_slice(&BATCH_MAGIC);
        bytes.extend_from_slice(&[BATCH_VERSION, 0, 0, 0]);
        bytes.extend_from_slice(&count.to_be_bytes());
        BatchEncoder {
            bytes,
            count_expected: count,
            count_pushed: 0,
        }
    }

    /// Appends a chunk with the CRC it already carries: a corrupt chunk stays
    /// detectably corrupt on the wire.
    pub fn push(&mut self, id: ChunkId, crc: u32, data: &[u8]) {
        assert!(self.count_pushed < self.count_expected);
        assert!(data.len() <= CHUNK_SIZE_BYTES);
        self.bytes.extend_from_slice(&id.blob.0.to_be_bytes());
        self.bytes.extend_from_slice(&id.index.to_be_bytes());
        let len = u32::try_from(data.len()).expect("CHUNK_SIZE_BYTES fits u32");
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(&crc.to_be_bytes());
        self.bytes.extend_from_slice(data);
        self.count_pushed += 1;
    }

    pub fn finish(self) -> Vec<u8> {
        assert_eq!(self.count_pushed, self.count_expected);
        self.bytes
    }
}

/// Encodes chunks that already carry their CRCs.
pub fn encode_batch(chunks: &[Chunk]) -> Vec<u8> {
    let mut encoder = BatchEncoder::new(chunks.len());
    for chunk in chunks {
        encoder.push(chunk.id, chunk.crc, &chunk.data);
    }
    encoder.finish()
}

/// Reads one whole batch from `reader`, checking every frame's length and
/// CRC and that nothing follows the last frame. Memory is bounded by
/// `BATCH_CHUNKS_MAX` chunks whatever the reader sends.
pub fn decode_batch(reader: &mut impl Read) -> Result<Vec<Chunk>, WireError> {
    let mut header = [0u8; BATCH_HEADER_BYTES];
    read_exact_or_truncated(reader, &mut header)?;
    if header[0..4] != BATCH_MAGIC {
        return Err(WireError::BadMagic);
    }
    if header[4] != BATCH_VERSION || header[5..8] != [0, 0, 0] {
        return Err(WireError::UnsupportedVersion(header[4]));
    }
    let count = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if count as usize > BATCH_CHUNKS_MAX {
        return Err(WireError::TooManyChunks { count });
    }
    let mut chunks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut frame = [0u8; FRAME_HEADER_BYTES];
        read_exact_or_truncated(reader, &mut frame)?;
        let field = |at: usize| {
            u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        let blob = u64::from_be_bytes([
            frame[0], frame[1], frame[2], frame[3], frame[4], frame[5], frame[6], frame[7],
        ]);
        let id = ChunkId {
            blob: BlobId(blob),
            index: field(8),
        };
        let len = field(12);
        if len as usize > CHUNK_SIZE_BYTES {
            return Err(WireError::ChunkTooLarge { id, len });
        }
        let mut data = vec![0u8; len as usize];
        read_exact_or_truncated(reader, &mut data)?;
        let chunk = Chunk {
            id,
            crc: field(16),
            data,
        };
        if !chunk.is_intact() {
            return Err(WireError::ChecksumMismatch { id });
        }
        chunks.push(chunk);
    }
    let mut probe = [0u8; 1];
    match reader.read(&mut probe) {
        Ok(0) => Ok(chunks),
        Ok(_) => Err(WireError::TrailingBytes),
        Err(err) => Err(WireError::Io(err)),
    }
}

fn read_exact_or_truncated(reader: &mut impl Read, buf: &mut [u8]) -> Result<(), WireError> {
    reader.read_exact(buf).map_err(|err| match err.kind() {
        io::ErrorKind::UnexpectedEof => WireError::Truncated,
        _ => WireError::Io(err),
    })
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(err) => write!(f, "reading the batch failed: {err}"),
            WireError::BadMagic => write!(f, "not a chunk batch (bad magic)"),
            WireError::UnsupportedVersion(version) => {
                write!(f, "unsupported chunk batch version {version}")
            }
            WireError::TooManyChunks { count } => {
                write!(
                    f,
                    "a batch holds at most {BATCH_CHUNKS_MAX} chunks, this one {count}"
                )
            }
            WireError::ChunkTooLarge { id, len } => {
                write!(
                    f,
                    "chunk {id} has {len} bytes, more than {CHUNK_SIZE_BYTES}"
                )
            }
            WireError::ChecksumMismatch { id } => write!(f, "chunk {id} does not match its CRC32C"),
            WireError::Truncated => write!(f, "the batch ends early"),
            WireError::TrailingBytes => write!(f, "bytes follow the last chunk of the batch"),
        }
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests;
