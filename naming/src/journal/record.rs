//! Journal and checkpoint records and their framing, pure: bytes in, values
//! out. A frame is `len u32 | crc32c(payload) u32 | payload`, big-endian;
//! a frame cut short or failing its CRC is a torn tail, never a record.

use std::io::{self, Read};
use std::sync::Arc;

use common::chunk::{BlobId, crc32c};
use common::name::FileName;

use crate::limits::REPLICATION_MAX;
use crate::metadata::{FileVersion, Run, ServerId};

/// The largest frame payload: a 64 GiB file cut into one run per batch.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 16 * 1024 * 1024;
pub const FRAME_HEADER_BYTES: usize = 8;

const KIND_COMMIT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_RESERVE_BLOBS: u8 = 3;
const KIND_SERVER: u8 = 4;
const KIND_END: u8 = 5;
const KIND_RELOCATE: u8 = 6;
const KIND_DRAIN: u8 = 7;

/// One change to the metadata, as the journal keeps it.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// `version` is now the file `name` (replacing any earlier one).
    Commit {
        name: FileName,
        version: Arc<FileVersion>,
    },
    Delete {
        name: FileName,
    },
    /// Blob ids below `up_to` may have been handed out: never reuse them.
    ReserveBlobs {
        up_to: u64,
    },
    /// Server id `id` in the runs means the storage server at `url`.
    Server {
        id: ServerId,
        url: String,
    },
    /// Chunks `first_index..first_index + count` of `blob` now live on
    /// `replicas` (a repair moved them).
    Relocate {
        blob: BlobId,
        first_index: u32,
        count: u32,
        replicas: Vec<ServerId>,
    },
    /// Server `id` is being drained.
    Drain {
        id: ServerId,
    },
    /// Closes a checkpoint: it holds `records_count` records before this one.
    End {
        records_count: u64,
    },
}

/// Why a frame or payload could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// Cut short or failing its CRC: what a crash mid-append leaves.
    Torn,
    /// A whole, checksummed frame whose payload makes no sense: a bug or
    /// tampering, never a crash.
    Malformed(String),
    Io(io::Error),
}

impl Record {
    /// The framed bytes of this record, ready to append.
    pub fn frame(&self) -> Vec<u8> {
        let payload = self.payload();
        assert!(payload.len() <= FRAME_PAYLOAD_BYTES_MAX);
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
        frame.extend_from_slice(
            &u32::try_from(payload.len())
                .expect("bounded above")
                .to_be_bytes(),
        );
        frame.extend_from_slice(&crc32c(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Record::Commit { name, version } => {
                out.push(KIND_COMMIT);
                put_str(&mut out, name.as_str());
                out.extend_from_slice(&version.blob.0.to_be_bytes());
                out.extend_from_slice(&version.size_bytes.to_be_bytes());
                out.extend_from_slice(
                    &u32::try_from(version.runs.len())
                        .expect("runs fit u32")
                        .to_be_bytes(),
                );
                for run in &version.runs {
                    out.extend_from_slice(&run.first_index.to_be_bytes());
                    out.extend_from_slice(&run.count.to_be_bytes());
                    put_replicas(&mut out, &run.replicas);
                }
            }
            Record::Delete { name } => {
                out.push(KIND_DELETE);
                put_str(&mut out, name.as_str());
            }
            Record::ReserveBlobs { up_to } => {
                out.push(KIND_RESERVE_BLOBS);
                out.extend_from_slice(&up_to.to_be_bytes());
            }
            Record::Server { id, url } => {
                out.push(KIND_SERVER);
                out.extend_from_slice(&id.to_be_bytes());
                put_str(&mut out, url);
            }
            Record::Relocate {
                blob,
                first_index,
                count,
                replicas,
            } => {
                out.push(KIND_RELOCATE);
                out.extend_from_slice(&blob.0.to_be_bytes());
                out.extend_from_slice(&first_index.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
                put_replicas(&mut out, replicas);
            }
            Record::Drain { id } => {
                out.push(KIND_DRAIN);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Record::End { records_count } => {
                out.push(KIND_END);
                out.extend_from_slice(&records_count.to_be_bytes());
            }
        }
        out
    }

    /// Parses a payload whose frame passed its CRC.
    pub fn parse(payload: &[u8]) -> Result<Record, FrameError> {
        let mut cursor = Cursor { bytes: payload };
        let record = match cursor.u8()? {
            KIND_COMMIT => {
                let name = cursor.name()?;
                let blob = BlobId(cursor.u64()?);
                let size_bytes = cursor.u64()?;
                let runs_count = cursor.u32()?;
                let mut runs = Vec::with_capacity((runs_count as usize).min(payload.len() / 9));
                for _ in 0..runs_count {
                    let first_index = cursor.u32()?;
                    let count = cursor.u32()?;
                    let replicas = cursor.replicas()?;
                    runs.push(Run {
                        first_index,
                        count,
                        replicas: replicas.into(),
                    });
                }
                let version = FileVersion {
                    blob,
                    size_bytes,
                    runs,
                };
                check_runs(&version)?;
                Record::Commit {
                    name,
                    version: Arc::new(version),
                }
            }
            KIND_DELETE => Record::Delete {
                name: cursor.name()?,
            },
            KIND_RESERVE_BLOBS => Record::ReserveBlobs {
                up_to: cursor.u64()?,
            },
            KIND_SERVER => Record::Server {
                id: cursor.u16()?,
                url: cursor.string()?,
            },
            KIND_RELOCATE => {
                let blob = BlobId(cursor.u64()?);
                let first_index = cursor.u32()?;
                let count = cursor.u32()?;
                let replicas = cursor.replicas()?;
                if count == 0 {
                    return Err(malformed("relocation of no chunks"));
                }
                Record::Relocate {
                    blob,
                    first_index,
                    count,
                    replicas,
                }
            }
            KIND_DRAIN => Record::Drain { id: cursor.u16()? },
            KIND_END => Record::End {
                records_count: cursor.u64()?,
            },
            kind => return Err(malformed(&format!("unknown record kind {kind}"))),
        };
        if !cursor.bytes.is_empty() {
            return Err(malformed("bytes after the record"));
        }
        Ok(record)
    }
}

/// Reads the next frame's payload: `None` at a clean end, `Torn` for a
/// frame cut short or failing its CRC.
pub fn read_frame(reader: &mut impl Read) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Torn),
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(FrameError::Io(err)),
        }
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::Torn);
    }
    let mut payload = vec![0u8; len];
    reader
        .read_exact(&mut payload)
        .map_err(|err| match err.kind() {
            io::ErrorKind::UnexpectedEof => FrameError::Torn,
            _ => FrameError::Io(err),
        })?;
    if crc32c(&payload) != crc {
        return Err(FrameError::Torn);
    }
    Ok(Some(payload))
}

/// Runs must cover the version's chunks once, in order.
fn check_runs(version: &FileVersion) -> Result<(), FrameError> {
    let mut next_index = 0u64;
    for run in &version.runs {
        if u64::from(run.first_index) != next_index || run.count == 0 {
            return Err(malformed("runs do not cover the file in order"));
        }
        next_index += u64::from(run.count);
    }
    if next_index != version.chunks_count() {
        return Err(malformed("runs do not cover the file's chunks"));
    }
    Ok(())
}

/// A replica set: `count u8 | server u16 × count`.
fn put_replicas(out: &mut Vec<u8>, replicas: &[ServerId]) {
    out.push(u8::try_from(replicas.len()).expect("REPLICATION_MAX fits u8"));
    for replica in replicas {
        out.extend_from_slice(&replica.to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(
        &u16::try_from(text.len())
            .expect("names and URLs are short")
            .to_be_bytes(),
    );
    out.extend_from_slice(text.as_bytes());
}

fn malformed(what: &str) -> FrameError {
    FrameError::Malformed(what.to_owned())
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        if self.bytes.len() < N {
            return Err(malformed("record ends early"));
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        Ok(head.try_into().expect("split at N"))
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn replicas(&mut self) -> Result<Vec<ServerId>, FrameError> {
        let count = self.u8()? as usize;
        if count == 0 || count > REPLICATION_MAX {
            return Err(malformed("replica count out of range"));
        }
        (0..count).map(|_| self.u16()).collect()
    }

    fn string(&mut self) -> Result<String, FrameError> {
        let len = self.u16()? as usize;
        if self.bytes.len() < len {
            return Err(malformed("string ends early"));
        }
        let (text, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| malformed("string is not UTF-8"))
    }

    fn name(&mut self) -> Result<FileName, FrameError> {
        let text = self.string()?;
        FileName::parse(&text).map_err(|err| malformed(&format!("bad name {text:?}: {err}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use common::chunk::BlobId;
    use common::name::FileName;

    use super::{FrameError, Record, read_frame};
    use crate::metadata::{FileVersion, push_run};

    fn records() -> Vec<Record> {
        let mut runs = Vec::new();
        push_run(&mut runs, 256, &[0, 1]);
        push_run(&mut runs, 3, &[2, 0]);
        let version = FileVersion {
            blob: BlobId(77),
            size_bytes: 258 * 1024 + 5,
            runs,
        };
        vec![
            Record::Server {
                id: 2,
                url: "http://127.0.0.1:8003".to_owned(),
            },
            Record::ReserveBlobs { up_to: 1 << 20 },
            Record::Commit {
                name: FileName::parse("dir/ü b").unwrap(),
                version: Arc::new(version),
            },
            Record::Commit {
                name: FileName::parse("empty").unwrap(),
                version: Arc::new(FileVersion {
                    blob: BlobId(78),
                    size_bytes: 0,
                    runs: Vec::new(),
                }),
            },
            Record::Delete {
                name: FileName::parse("dir/ü b").unwrap(),
            },
            Record::Relocate {
                blob: BlobId(78),
                first_index: 3,
                count: 2,
                replicas: vec![2, 1],
            },
            Record::Drain { id: 1 },
            Record::End { records_count: 7 },
        ]
    }

    #[test]
    fn every_record_round_trips_through_its_frame() {
        let bytes: Vec<u8> = records().iter().flat_map(Record::frame).collect();
        let mut reader = &bytes[..];
        for expected in records() {
            let payload = read_frame(&mut reader).unwrap().unwrap();
            assert_eq!(Record::parse(&payload).unwrap(), expected);
        }
        assert!(read_frame(&mut reader).unwrap().is_none());
    }

    #[test]
    fn a_cut_or_flipped_frame_is_torn_never_a_record() {
        let frame = records()[2].frame();
        for cut in 1..frame.len() {
            assert!(
                matches!(read_frame(&mut &frame[..cut]), Err(FrameError::Torn)),
                "cut at {cut}"
            );
        }
        for at in 0..frame.len() {
            let mut flipped = frame.clone();
            flipped[at] ^= 0x10;
            match read_frame(&mut &flipped[..]) {
                Err(FrameError::Torn) => {}
                Ok(Some(payload)) => panic!("flip at {at} read as {:?}", Record::parse(&payload)),
                other => panic!("flip at {at}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_checksummed_payload_that_makes_no_sense_is_malformed() {
        for payload in [&[9u8][..], &[1, 0, 1], &[2, 0, 1, b'/'], &[3, 0, 0]] {
            assert!(
                matches!(Record::parse(payload), Err(FrameError::Malformed(_))),
                "{payload:?}"
            );
        }
    }
}
