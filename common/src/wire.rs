//! The batch wire format between naming and storage: many chunks per HTTP
//! body, each with its own CRC32C, so a batch costs one request, and a flipped
//! bit anywhere is caught before a chunk is stored or served.
//!
//! ```text
//! batch  = magic "HRBT" | version u8 = 1 | 3 reserved zero bytes | count u32 | frame*count
//! frame  = blob u64 | index u32 | len u32 (<= 1024) | crc32c(data) u32 | data[len]
//! ```
//! Integers are big-endian. A batch ends exactly after its last frame.
//!
//! A storage server's blob listing (`GET /blobs`, for reconciliation) is a
//! 12-byte entry per blob held, sorted by blob id:
//! ```text
//! entry  = blob u64 | chunk count u32 (u32::MAX for more)
//! ```

use std::fmt;
use std::io::{self, Read};

use crate::chunk::{BlobId, ChunkId, crc32c};
use crate::codec::{Put, Reader};
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

/// A chunk whose bytes live elsewhere (a received batch, a segment read)
/// and match its CRC32C: made only by a check (`decode_batch_from`,
/// `ChunkRef::checked`, `Chunk::as_ref`), so holding one is the proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef<'a> {
    id: ChunkId,
    crc: u32,
    data: &'a [u8],
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

    /// A view of this chunk; it must be intact.
    pub fn as_ref(&self) -> ChunkRef<'_> {
        ChunkRef::checked(self.id, self.crc, &self.data).expect("an intact chunk")
    }
}

impl<'a> ChunkRef<'a> {
    /// `data` as chunk `id` if it matches `crc`.
    pub fn checked(id: ChunkId, crc: u32, data: &'a [u8]) -> Option<ChunkRef<'a>> {
        (data.len() <= CHUNK_SIZE_BYTES && crc32c(data) == crc).then_some(ChunkRef {
            id,
            crc,
            data,
        })
    }

    pub fn id(&self) -> ChunkId {
        self.id
    }

    pub fn crc(&self) -> u32 {
        self.crc
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    pub fn to_owned(&self) -> Chunk {
        Chunk {
            id: self.id,
            crc: self.crc,
            data: self.data.to_vec(),
        }
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
        BatchEncoder::reusing(Vec::new(), count)
    }

    /// An encoder writing into `buffer` (emptied first), so a caller that
    /// encodes batch after batch can reuse its buffers.
    pub fn reusing(mut buffer: Vec<u8>, count: usize) -> BatchEncoder {
        assert!(count <= BATCH_CHUNKS_MAX);
        let count = u32::try_from(count).expect("BATCH_CHUNKS_MAX fits u32");
        buffer.clear();
        buffer
            .reserve(BATCH_HEADER_BYTES + count as usize * (FRAME_HEADER_BYTES + CHUNK_SIZE_BYTES));
        let mut bytes = buffer;
        bytes.put_bytes(&BATCH_MAGIC);
        bytes.put_bytes(&[BATCH_VERSION, 0, 0, 0]);
        bytes.put_u32(count);
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
        let len = u32::try_from(data.len()).expect("CHUNK_SIZE_BYTES fits u32");
        self.bytes.put_u64(id.blob.0);
        self.bytes.put_u32(id.index);
        self.bytes.put_u32(len);
        self.bytes.put_u32(crc);
        self.bytes.put_bytes(data);
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

/// Reads one whole batch from `reader` and decodes it as
/// `decode_batch_from` does, into owned chunks.
pub fn decode_batch(reader: &mut impl Read) -> Result<Vec<Chunk>, WireError> {
    let mut chunks = Vec::new();
    decode_batch_from(reader, &mut |chunk| chunks.push(chunk.to_owned()))?;
    Ok(chunks)
}

/// Bytes of a batch `decode_batch_from` holds at once: a piece of the
/// stream, never the whole batch.
const STREAM_PIECE_BYTES: usize = 64 * 1024;

const _: () =
    assert!(STREAM_PIECE_BYTES >= BATCH_HEADER_BYTES + FRAME_HEADER_BYTES + CHUNK_SIZE_BYTES);

/// Decodes a batch as it streams from `reader`, a piece at a time: it
/// refuses a bad magic or version, more than `BATCH_CHUNKS_MAX` frames, a
/// frame over a chunk, a CRC mismatch, a short body and trailing bytes,
/// handing each chunk to `visit` as soon as
/// it is checked (borrowed from the piece); returns the chunk count. On an
/// error some chunks may have been visited already: a caller that must be
/// all or nothing keeps what it made of them until this returns `Ok`.
pub fn decode_batch_from(
    reader: &mut dyn Read,
    visit: &mut dyn FnMut(ChunkRef<'_>),
) -> Result<u32, WireError> {
    let mut stream = PieceReader {
        reader,
        piece: [0u8; STREAM_PIECE_BYTES],
        start: 0,
        end: 0,
    };
    let mut fields = Reader::new(stream.take(BATCH_HEADER_BYTES)?);
    let in_header = "BATCH_HEADER_BYTES holds the batch header";
    if fields.array::<4>().expect(in_header) != BATCH_MAGIC {
        return Err(WireError::BadMagic);
    }
    let version = fields.u8().expect(in_header);
    if version != BATCH_VERSION || fields.array::<3>().expect(in_header) != [0, 0, 0] {
        return Err(WireError::UnsupportedVersion(version));
    }
    let count = fields.u32().expect(in_header);
    if count as usize > BATCH_CHUNKS_MAX {
        return Err(WireError::TooManyChunks { count });
    }
    for _ in 0..count {
        let frame: [u8; FRAME_HEADER_BYTES] = stream
            .take(FRAME_HEADER_BYTES)?
            .try_into()
            .expect("take gives FRAME_HEADER_BYTES");
        let (id, len, crc) = decode_frame_header(&frame);
        if len as usize > CHUNK_SIZE_BYTES {
            return Err(WireError::ChunkTooLarge { id, len });
        }
        let data = stream.take(len as usize)?;
        visit(ChunkRef::checked(id, crc, data).ok_or(WireError::ChecksumMismatch { id })?);
    }
    if stream.start < stream.end || stream.fill()? {
        return Err(WireError::TrailingBytes);
    }
    Ok(count)
}

/// A reader seen through a buffer of `STREAM_PIECE_BYTES`.
struct PieceReader<'a> {
    reader: &'a mut dyn Read,
    piece: [u8; STREAM_PIECE_BYTES],
    start: usize,
    end: usize,
}

impl PieceReader<'_> {
    /// The next `len` bytes (at most a piece's worth).
    fn take(&mut self, len: usize) -> Result<&[u8], WireError> {
        assert!(len <= STREAM_PIECE_BYTES);
        while self.end - self.start < len {
            if !self.fill()? {
                return Err(WireError::Truncated);
            }
        }
        let taken = &self.piece[self.start..self.start + len];
        self.start += len;
        Ok(taken)
    }

    /// Reads more, after moving what is left to the front; false at the end.
    fn fill(&mut self) -> Result<bool, WireError> {
        self.piece.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        loop {
            match self.reader.read(&mut self.piece[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(read) => {
                    self.end += read;
                    return Ok(true);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(WireError::Io(err)),
            }
        }
    }
}

/// The chunk id, length and CRC of a frame header.
fn decode_frame_header(frame: &[u8; FRAME_HEADER_BYTES]) -> (ChunkId, u32, u32) {
    let mut fields = Reader::new(frame);
    let (blob, index, len, crc) = (fields.u64(), fields.u32(), fields.u32(), fields.u32());
    let in_frame = "FRAME_HEADER_BYTES holds a frame header";
    let id = ChunkId {
        blob: BlobId(blob.expect(in_frame)),
        index: index.expect(in_frame),
    };
    (id, len.expect(in_frame), crc.expect(in_frame))
}

/// Bytes of one entry of a blob listing.
pub const BLOB_ENTRY_BYTES: usize = 12;

/// Appends the listing entry of `blob`, holding `chunks_count` chunks; a
/// count past `u32::MAX` (more chunks than any file has) is sent as
/// `u32::MAX`.
pub fn put_blob_entry(out: &mut Vec<u8>, blob: BlobId, chunks_count: u64) {
    out.put_u64(blob.0);
    out.put_u32(u32::try_from(chunks_count).unwrap_or(u32::MAX));
}

/// The blob and chunk count of one listing entry.
pub fn decode_blob_entry(entry: &[u8; BLOB_ENTRY_BYTES]) -> (BlobId, u32) {
    let mut fields = Reader::new(entry);
    let in_entry = "BLOB_ENTRY_BYTES holds blob and count";
    let blob = fields.u64().expect(in_entry);
    (BlobId(blob), fields.u32().expect(in_entry))
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
