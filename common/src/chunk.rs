//! Chunk identity and checksums. A file version is stored as one *blob*; its
//! chunks are `(blob, index)`, so chunk ids are derived, never stored one by
//! one. Ids travel as fixed-width lowercase hex, and parsing accepts nothing
//! else: no id can name a path outside a storage server's directory.

use std::fmt;

/// The id of one stored version of a file. Never reused: an overwrite writes
/// a new blob, so the old and the new bytes never share a chunk id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId(pub u64);

/// One chunk: the `index`-th 1 KiB piece of blob `blob`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId {
    pub blob: BlobId,
    pub index: u32,
}

/// Hex digits of a `BlobId`.
pub const BLOB_ID_HEX_LEN: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedId;

impl BlobId {
    /// Parses exactly `BLOB_ID_HEX_LEN` lowercase hex digits.
    pub fn parse(hex: &str) -> Result<BlobId, MalformedId> {
        let well_formed = hex.len() == BLOB_ID_HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(MalformedId);
        }
        u64::from_str_radix(hex, 16)
            .map(BlobId)
            .map_err(|_| MalformedId)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.blob, self.index)
    }
}

impl fmt::Display for MalformedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed blob id (expected {BLOB_ID_HEX_LEN} lowercase hex digits)"
        )
    }
}

impl std::error::Error for MalformedId {}

/// The CRC32C (Castagnoli) of `data`: the checksum of every chunk, on the wire and on disk.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Continues a CRC32C over more bytes.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{BlobId, MalformedId, crc32c};

    #[test]
    fn blob_ids_are_fixed_width_lowercase_hex() {
        let id = BlobId(0x0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "0123456789abcdef");
        assert_eq!(BlobId::parse("0123456789abcdef"), Ok(id));
        for bad in [
            "",
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdef0",
            "../../etc/passwd",
            "+123456789abcdef",
            "0123456789abcde/",
        ] {
            assert_eq!(BlobId::parse(bad), Err(MalformedId), "{bad:?}");
        }
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
