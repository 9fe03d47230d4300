//! The records of a segment file, and the one reader of them. Every place
//! that reads segment bytes goes through here: recovery and compaction walk
//! a segment with `scan` (the shape of SeaweedFS's `ScanVolumeFile`, with a
//! visitor), reads and the scrubber check the records the index points at
//! with `verify_run`; both decode with `parse_at`. Pure but for `scan`,
//! which reads the file.
//!
//! ```text
//! segment = magic "HRBSEG01" | record*
//! record  = kind u8 | 3 zero bytes | blob u64 | index u32 | len u32 | data_crc u32
//!           | header_crc u32 (CRC32C of the 24 bytes before it) | data[len]
//! ```
//! Integers are big-endian (`common::codec`). Kind 1 is a chunk; kind 2 is
//! a tombstone that deletes every earlier chunk of `blob` (its index, len
//! and data_crc are 0). A record whose header fails its checks cannot be
//! trusted for its length, so nothing after it in its segment can be found.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use common::chunk::{BlobId, ChunkId, crc32c};
use common::codec::{Put, Reader};
use common::limits::CHUNK_SIZE_BYTES;
use common::wire::ChunkRef;

pub const SEGMENT_MAGIC: [u8; 8] = *b"HRBSEG01";
pub const SEGMENT_MAGIC_BYTES: u64 = SEGMENT_MAGIC.len() as u64;

/// Bytes of a record's header.
pub const RECORD_HEADER_BYTES: usize = 28;

/// Distance between the records of two consecutive chunks of a run.
pub const RECORD_STRIDE_BYTES: u64 = (RECORD_HEADER_BYTES + CHUNK_SIZE_BYTES) as u64;

/// Bytes of a tombstone record: a header without data.
pub const TOMBSTONE_BYTES: u64 = RECORD_HEADER_BYTES as u64;

/// Bytes of a segment `scan` reads at a time.
pub const SCAN_PIECE_BYTES: usize = 4 * 1024 * 1024;

const KIND_CHUNK: u8 = 1;
const KIND_TOMBSTONE: u8 = 2;

const _: () = assert!(SCAN_PIECE_BYTES >= 2 * (RECORD_HEADER_BYTES + CHUNK_SIZE_BYTES));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Chunk,
    Tombstone,
}

/// A record's header, checked, and where it sits in its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAt {
    pub offset: u64,
    pub kind: Kind,
    pub id: ChunkId,
    pub len: u32,
    pub data_crc: u32,
}

/// What `parse_at` finds at a place.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    Record(RecordAt),
    /// The header fails its CRC or its shape: nothing after it is known.
    Damaged,
    /// The bytes end inside the record.
    Cut,
}

/// How a `scan` of a segment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// At the end of the file, after a whole record.
    Clean,
    /// No segment magic: nothing in the file can be read.
    NoMagic,
    /// A record header at `offset` fails its checks.
    Damaged { offset: u64 },
    /// The file ends inside the record at `offset` (a torn tail).
    Cut { offset: u64 },
}

/// A stretch of a segment read by `scan`, with the whole records in it.
pub struct Piece<'a> {
    /// The offset in the segment of `bytes[0]`.
    pub offset: u64,
    pub bytes: &'a [u8],
    pub records: Vec<RecordAt>,
}

/// What `scan` calls for each piece of a segment, in order.
pub trait Visitor {
    fn visit(&mut self, piece: &Piece<'_>) -> io::Result<()>;
}

impl RecordAt {
    /// Bytes of the whole record: header and data.
    pub fn record_bytes(&self) -> u64 {
        (RECORD_HEADER_BYTES + self.len as usize) as u64
    }

    pub fn end(&self) -> u64 {
        self.offset + self.record_bytes()
    }
}

impl Piece<'_> {
    /// The bytes of `record`, header and data, which lies in this piece.
    pub fn record_bytes(&self, record: &RecordAt) -> &[u8] {
        let at = usize::try_from(record.offset - self.offset).expect("inside the piece");
        &self.bytes[at..at + record.record_bytes() as usize]
    }

    /// The data of `record`.
    pub fn data(&self, record: &RecordAt) -> &[u8] {
        &self.record_bytes(record)[RECORD_HEADER_BYTES..]
    }

    /// Whether `record`'s data matches its CRC32C (a tombstone always does).
    pub fn data_intact(&self, record: &RecordAt) -> bool {
        crc32c(self.data(record)) == record.data_crc
    }
}

/// Appends the record of chunk `id` with `data` and its CRC32C.
pub fn encode_chunk(out: &mut Vec<u8>, id: ChunkId, data_crc: u32, data: &[u8]) {
    assert!(data.len() <= CHUNK_SIZE_BYTES);
    encode(out, KIND_CHUNK, id, data_crc, data);
}

/// Appends a tombstone of `blob`.
pub fn encode_tombstone(out: &mut Vec<u8>, blob: BlobId) {
    encode(out, KIND_TOMBSTONE, ChunkId { blob, index: 0 }, 0, &[]);
}

fn encode(out: &mut Vec<u8>, kind: u8, id: ChunkId, data_crc: u32, data: &[u8]) {
    let start = out.len();
    out.put_bytes(&[kind, 0, 0, 0]);
    out.put_u64(id.blob.0);
    out.put_u32(id.index);
    out.put_u32(u32::try_from(data.len()).expect("a chunk fits u32"));
    out.put_u32(data_crc);
    let header_crc = crc32c(&out[start..]);
    out.put_u32(header_crc);
    assert_eq!(out.len() - start, RECORD_HEADER_BYTES);
    out.put_bytes(data);
}

/// The record at `at` of `bytes`, which sit at `offset` of their segment.
pub fn parse_at(bytes: &[u8], at: usize, offset: u64) -> Parse {
    let Some(header) = bytes.get(at..at + RECORD_HEADER_BYTES) else {
        return Parse::Cut;
    };
    let mut fields = Reader::new(header);
    let in_header = "RECORD_HEADER_BYTES holds a record header";
    let kind = fields.u8().expect(in_header);
    let zeros = fields.array::<3>().expect(in_header);
    let blob = fields.u64().expect(in_header);
    let index = fields.u32().expect(in_header);
    let len = fields.u32().expect(in_header);
    let data_crc = fields.u32().expect(in_header);
    let header_crc = fields.u32().expect(in_header);
    if crc32c(&header[..RECORD_HEADER_BYTES - 4]) != header_crc || zeros != [0, 0, 0] {
        return Parse::Damaged;
    }
    let kind = match kind {
        KIND_CHUNK if len as usize <= CHUNK_SIZE_BYTES => Kind::Chunk,
        KIND_TOMBSTONE if len == 0 => Kind::Tombstone,
        _ => return Parse::Damaged,
    };
    if bytes.len() - at - RECORD_HEADER_BYTES < len as usize {
        return Parse::Cut;
    }
    Parse::Record(RecordAt {
        offset: offset + at as u64,
        kind,
        id: ChunkId {
            blob: BlobId(blob),
            index,
        },
        len,
        data_crc,
    })
}

/// Walks the records of `file`, `len` bytes long, in order: reads it a
/// piece of `SCAN_PIECE_BYTES` at a time (a record cut by a piece's end
/// goes to the next piece) and hands the visitor each piece's whole
/// records. Ends at the end of the file or at the first record that cannot
/// be read; returns where the whole records end, and how it ended.
pub fn scan(file: &File, len: u64, visitor: &mut impl Visitor) -> io::Result<(u64, ScanEnd)> {
    let mut magic = [0u8; SEGMENT_MAGIC.len()];
    if len < SEGMENT_MAGIC_BYTES || {
        file.read_exact_at(&mut magic, 0)?;
        magic != SEGMENT_MAGIC
    } {
        return Ok((0, ScanEnd::NoMagic));
    }
    let mut buffer =
        vec![0u8; usize::try_from(len.min(SCAN_PIECE_BYTES as u64)).expect("a piece fits memory")];
    let mut offset = SEGMENT_MAGIC_BYTES;
    while offset < len {
        let want = usize::try_from((len - offset).min(SCAN_PIECE_BYTES as u64))
            .expect("a piece fits memory");
        let bytes = &mut buffer[..want];
        file.read_exact_at(bytes, offset)?;
        let is_last = offset + want as u64 == len;
        let mut records = Vec::new();
        let mut at = 0;
        let stop = loop {
            if at == bytes.len() {
                break None;
            }
            match parse_at(bytes, at, offset) {
                Parse::Record(record) => {
                    at += record.record_bytes() as usize;
                    records.push(record);
                }
                Parse::Damaged => {
                    break Some(ScanEnd::Damaged {
                        offset: offset + at as u64,
                    });
                }
                Parse::Cut if is_last => {
                    break Some(ScanEnd::Cut {
                        offset: offset + at as u64,
                    });
                }
                Parse::Cut => break None,
            }
        };
        visitor.visit(&Piece {
            offset,
            bytes,
            records,
        })?;
        offset += at as u64;
        if let Some(end) = stop {
            return Ok((offset, end));
        }
        assert!(at > 0, "a piece of SCAN_PIECE_BYTES holds a whole record");
    }
    Ok((offset, ScanEnd::Clean))
}

/// Checks the records of a run of `count` chunks of `blob` from
/// `first_index`, the last `last_len` bytes long, read whole into `bytes`
/// from `offset` (records lie `RECORD_STRIDE_BYTES` apart): each chunk, or
/// the id of one whose header is not the expected one or whose data fails
/// its CRC32C.
pub fn verify_run(
    bytes: &[u8],
    offset: u64,
    (blob, first_index): (BlobId, u32),
    count: u32,
    last_len: u32,
) -> Vec<Result<ChunkRef<'_>, ChunkId>> {
    (0..count)
        .map(|k| {
            let id = ChunkId {
                blob,
                index: first_index + k,
            };
            let at = k as usize * RECORD_STRIDE_BYTES as usize;
            let expected_len = if k + 1 == count {
                last_len
            } else {
                CHUNK_SIZE_BYTES as u32
            };
            let Parse::Record(record) = parse_at(bytes, at, offset) else {
                return Err(id);
            };
            if record.kind != Kind::Chunk || record.id != id || record.len != expected_len {
                return Err(id);
            }
            let data_start = at + RECORD_HEADER_BYTES;
            let data = &bytes[data_start..data_start + record.len as usize];
            ChunkRef::checked(id, record.data_crc, data).ok_or(id)
        })
        .collect()
}

#[cfg(test)]
mod tests;
