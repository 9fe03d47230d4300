//! Journal and checkpoint records and their framing, pure: bytes in, values
//! out. A frame is `len u32 | crc32c(payload) u32 | payload`, big-endian
//! (`common::codec`); a frame cut short or failing its CRC is a torn tail,
//! never a record. A payload is one `Change`, or the `End` that closes a
//! checkpoint.
//!
//! ```text
//! Commit   8 | name | blob u64 | size u64 | mtime_ms u64 | runs u32 | (first u32 | count u32 | replicas)*
//! Commit   1 | the same without mtime_ms (journals before times were kept; read, never written)
//! Delete   2 | name
//! Reserve  3 | up_to u64
//! Server   4 | id u16 | url
//! End      5 | records u64
//! Relocate 6 | blob u64 | first u32 | count u32 | replicas
//! Drain    7 | id u16
//! Rename   9 | from name | to name
//! RenameAll 10 | from prefix | to prefix   (a directory: every name under it)
//! MakeDir  11 | path (ending in /)
//! RemoveDir 12 | path
//! Commit  13 | as kind 8 | object      (a version an S3 client stored)
//! Commit  14 | name | size u64 | mtime_ms u64 | pieces u32 | piece* | has object u8 | object?
//! Upload  15 | id u64 | name | started_ms u64 | object
//! Part    16 | upload u64 | number u32 | md5 [16] | mtime_ms u64 | piece
//! Complete 17 | upload u64 | md5 [16] | mtime_ms u64 | parts u32 | (number u32 | md5 [16])*
//! Abort   18 | upload u64
//! piece    = blob u64 | size u64 | runs u32 | (first u32 | count u32 | replicas)*
//! object   = md5 [16] | parts u32 | content type str | pairs u16 | (key str | value str)*
//! replicas = count u8 | server u16 × count;  name, url = len u16 | UTF-8
//! ```
//!
//! A version of one piece (every file written whole) is written as kind 8
//! or 13; kind 14 is for several (a completed multipart upload).
//!
//! ```text
//! ```

use std::io::{self, Read};
use std::sync::Arc;

use common::chunk::{BlobId, crc32c};
use common::codec::{Put, Reader, Short};
use common::name::FileName;

use crate::limits::REPLICATION_MAX;
use crate::metadata::change::Change;
use crate::metadata::uploads::Part;
use crate::metadata::version::{FileVersion, ObjectMeta, Piece, Run, ServerId};

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
const KIND_COMMIT_TIMED: u8 = 8;
const KIND_RENAME: u8 = 9;
const KIND_RENAME_PREFIX: u8 = 10;
const KIND_MAKE_DIR: u8 = 11;
const KIND_REMOVE_DIR: u8 = 12;
const KIND_COMMIT_OBJECT: u8 = 13;
const KIND_COMMIT_PIECES: u8 = 14;
const KIND_BEGIN_UPLOAD: u8 = 15;
const KIND_ADD_PART: u8 = 16;
const KIND_COMPLETE_UPLOAD: u8 = 17;
const KIND_ABORT_UPLOAD: u8 = 18;

/// What one frame holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    Change(Change),
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

/// The framed bytes of `record`, ready to append.
pub fn frame(record: &Record) -> Vec<u8> {
    let payload = payload(record);
    assert!(payload.len() <= FRAME_PAYLOAD_BYTES_MAX);
    // A zero length marks the zeroed tail, the end of a journal.
    assert!(!payload.is_empty(), "every record has a tag");
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.put_u32(u32::try_from(payload.len()).expect("bounded above"));
    frame.put_u32(crc32c(&payload));
    frame.put_bytes(&payload);
    frame
}

fn payload(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    let change = match record {
        Record::End { records_count } => {
            out.put_u8(KIND_END);
            out.put_u64(*records_count);
            return out;
        }
        Record::Change(change) => change,
    };
    match change {
        Change::Commit { name, version, .. } => match &*version.pieces {
            [piece] => {
                out.put_u8(match version.object {
                    None => KIND_COMMIT_TIMED,
                    Some(_) => KIND_COMMIT_OBJECT,
                });
                put_str(&mut out, name.as_str());
                out.put_u64(piece.blob.0);
                out.put_u64(piece.size_bytes);
                out.put_u64(version.mtime_ms);
                put_runs(&mut out, &piece.runs);
                if let Some(object) = &version.object {
                    put_object(&mut out, object);
                }
            }
            pieces => {
                out.put_u8(KIND_COMMIT_PIECES);
                put_str(&mut out, name.as_str());
                out.put_u64(version.size_bytes);
                out.put_u64(version.mtime_ms);
                out.put_u32(u32::try_from(pieces.len()).expect("pieces fit u32"));
                for piece in pieces {
                    put_piece(&mut out, piece);
                }
                out.put_u8(u8::from(version.object.is_some()));
                if let Some(object) = &version.object {
                    put_object(&mut out, object);
                }
            }
        },
        Change::BeginUpload {
            id,
            name,
            started_ms,
            object,
        } => {
            out.put_u8(KIND_BEGIN_UPLOAD);
            out.put_u64(*id);
            put_str(&mut out, name.as_str());
            out.put_u64(*started_ms);
            put_object(&mut out, object);
        }
        Change::AddPart {
            upload,
            number,
            part,
        } => {
            out.put_u8(KIND_ADD_PART);
            out.put_u64(*upload);
            out.put_u32(*number);
            out.put_bytes(&part.md5);
            out.put_u64(part.mtime_ms);
            put_piece(&mut out, &part.piece);
        }
        Change::CompleteUpload {
            upload,
            parts,
            md5,
            mtime_ms,
        } => {
            out.put_u8(KIND_COMPLETE_UPLOAD);
            out.put_u64(*upload);
            out.put_bytes(md5);
            out.put_u64(*mtime_ms);
            out.put_u32(u32::try_from(parts.len()).expect("part numbers fit u32"));
            for (number, part_md5) in parts {
                out.put_u32(*number);
                out.put_bytes(part_md5);
            }
        }
        Change::AbortUpload { upload } => {
            out.put_u8(KIND_ABORT_UPLOAD);
            out.put_u64(*upload);
        }
        Change::Delete { name } => {
            out.put_u8(KIND_DELETE);
            put_str(&mut out, name.as_str());
        }
        Change::Rename { from, to, .. } => {
            out.put_u8(KIND_RENAME);
            put_str(&mut out, from.as_str());
            put_str(&mut out, to.as_str());
        }
        Change::RenamePrefix { from, to } => {
            out.put_u8(KIND_RENAME_PREFIX);
            put_str(&mut out, from);
            put_str(&mut out, to);
        }
        Change::MakeDir { path } => {
            out.put_u8(KIND_MAKE_DIR);
            put_str(&mut out, path);
        }
        Change::RemoveDir { path, .. } => {
            out.put_u8(KIND_REMOVE_DIR);
            put_str(&mut out, path);
        }
        Change::ReserveBlobs { up_to } => {
            out.put_u8(KIND_RESERVE_BLOBS);
            out.put_u64(*up_to);
        }
        Change::AddServer { id, url } => {
            out.put_u8(KIND_SERVER);
            out.put_u16(*id);
            put_str(&mut out, url);
        }
        Change::Relocate {
            blob,
            first_index,
            count,
            replicas,
        } => {
            out.put_u8(KIND_RELOCATE);
            out.put_u64(blob.0);
            out.put_u32(*first_index);
            out.put_u32(*count);
            put_replicas(&mut out, replicas);
        }
        Change::Drain { id } => {
            out.put_u8(KIND_DRAIN);
            out.put_u16(*id);
        }
    }
    out
}

/// Parses a payload whose frame passed its CRC.
pub fn parse(payload: &[u8]) -> Result<Record, FrameError> {
    let mut reader = Reader::new(payload);
    let change = match reader.u8()? {
        kind @ (KIND_COMMIT | KIND_COMMIT_TIMED | KIND_COMMIT_OBJECT) => {
            let name = name(&mut reader)?;
            let blob = BlobId(reader.u64()?);
            let size_bytes = reader.u64()?;
            let mtime_ms = match kind {
                KIND_COMMIT => 0,
                _ => reader.u64()?,
            };
            let runs = runs(&mut reader)?;
            let object = match kind {
                KIND_COMMIT_OBJECT => Some(Box::new(object(&mut reader)?)),
                _ => None,
            };
            let piece = Piece {
                blob,
                size_bytes,
                runs,
            };
            commit(name, FileVersion::whole(piece, mtime_ms, object))?
        }
        KIND_COMMIT_PIECES => {
            let name = name(&mut reader)?;
            let size_bytes = reader.u64()?;
            let mtime_ms = reader.u64()?;
            let pieces_count = reader.u32()?;
            // Each piece takes 20 bytes at least: no allocation beyond the input.
            let mut pieces =
                Vec::with_capacity((pieces_count as usize).min(reader.rest().len() / 20));
            for _ in 0..pieces_count {
                pieces.push(piece(&mut reader)?);
            }
            let object = match reader.u8()? {
                0 => None,
                _ => Some(Box::new(object(&mut reader)?)),
            };
            let version = FileVersion {
                pieces: pieces.into(),
                size_bytes,
                mtime_ms,
                object,
            };
            commit(name, version)?
        }
        KIND_BEGIN_UPLOAD => Change::BeginUpload {
            id: reader.u64()?,
            name: name(&mut reader)?,
            started_ms: reader.u64()?,
            object: Box::new(object(&mut reader)?),
        },
        KIND_ADD_PART => {
            let upload = reader.u64()?;
            let number = reader.u32()?;
            let digest = md5(&mut reader)?;
            let mtime_ms = reader.u64()?;
            let piece = piece(&mut reader)?;
            piece.check_runs().map_err(malformed)?;
            Change::AddPart {
                upload,
                number,
                part: Part {
                    piece,
                    md5: digest,
                    mtime_ms,
                },
            }
        }
        KIND_COMPLETE_UPLOAD => {
            let upload = reader.u64()?;
            let digest = md5(&mut reader)?;
            let mtime_ms = reader.u64()?;
            let count = reader.u32()?;
            // Each part takes 20 bytes: no allocation beyond the input.
            let mut parts = Vec::with_capacity((count as usize).min(reader.rest().len() / 20));
            for _ in 0..count {
                parts.push((reader.u32()?, md5(&mut reader)?));
            }
            Change::CompleteUpload {
                upload,
                parts,
                md5: digest,
                mtime_ms,
            }
        }
        KIND_ABORT_UPLOAD => Change::AbortUpload {
            upload: reader.u64()?,
        },
        KIND_DELETE => Change::Delete {
            name: name(&mut reader)?,
        },
        KIND_RENAME => Change::Rename {
            from: name(&mut reader)?,
            to: name(&mut reader)?,
            overwrite: true,
        },
        KIND_RENAME_PREFIX => Change::RenamePrefix {
            from: string(&mut reader)?,
            to: string(&mut reader)?,
        },
        KIND_MAKE_DIR => Change::MakeDir {
            path: string(&mut reader)?,
        },
        KIND_REMOVE_DIR => Change::RemoveDir {
            path: string(&mut reader)?,
            even_if_not_empty: true,
        },
        KIND_RESERVE_BLOBS => Change::ReserveBlobs {
            up_to: reader.u64()?,
        },
        KIND_SERVER => Change::AddServer {
            id: reader.u16()?,
            url: string(&mut reader)?,
        },
        KIND_RELOCATE => {
            let blob = BlobId(reader.u64()?);
            let first_index = reader.u32()?;
            let count = reader.u32()?;
            let replicas = replicas(&mut reader)?;
            if count == 0 {
                return Err(malformed("relocation of no chunks"));
            }
            Change::Relocate {
                blob,
                first_index,
                count,
                replicas,
            }
        }
        KIND_DRAIN => Change::Drain { id: reader.u16()? },
        KIND_END => {
            let end = Record::End {
                records_count: reader.u64()?,
            };
            return expect_end_of(&reader).map(|()| end);
        }
        kind => return Err(malformed(&format!("unknown record kind {kind}"))),
    };
    expect_end_of(&reader).map(|()| Record::Change(change))
}

fn expect_end_of(reader: &Reader<'_>) -> Result<(), FrameError> {
    match reader.is_empty() {
        true => Ok(()),
        false => Err(malformed("bytes after the record")),
    }
}

/// Reads the next frame's payload: `None` at a clean end, `Torn` for a
/// frame cut short or failing its CRC, and for a header of zeros (the
/// journal's zeroed tail, see `common::zeroed_tail`).
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
    let mut fields = Reader::new(&header);
    let in_header = "FRAME_HEADER_BYTES holds length and CRC";
    let len = fields.u32().expect(in_header) as usize;
    let crc = fields.u32().expect(in_header);
    if len == 0 || len > FRAME_PAYLOAD_BYTES_MAX {
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

/// A journaled commit of `version`, checked whole.
fn commit(name: FileName, version: FileVersion) -> Result<Change, FrameError> {
    version.check().map_err(malformed)?;
    Ok(Change::Commit {
        name,
        version: Arc::new(version),
        overwrite: true,
    })
}

fn put_runs(out: &mut Vec<u8>, runs: &[Run]) {
    out.put_u32(u32::try_from(runs.len()).expect("runs fit u32"));
    for run in runs {
        out.put_u32(run.first_index);
        out.put_u32(run.count);
        put_replicas(out, &run.replicas);
    }
}

fn runs(reader: &mut Reader<'_>) -> Result<Vec<Run>, FrameError> {
    let runs_count = reader.u32()?;
    // Each run takes 11 bytes at least: no allocation beyond the input.
    let mut runs = Vec::with_capacity((runs_count as usize).min(reader.rest().len() / 11));
    for _ in 0..runs_count {
        runs.push(Run {
            first_index: reader.u32()?,
            count: reader.u32()?,
            replicas: replicas(reader)?.into(),
        });
    }
    Ok(runs)
}

fn put_piece(out: &mut Vec<u8>, piece: &Piece) {
    out.put_u64(piece.blob.0);
    out.put_u64(piece.size_bytes);
    put_runs(out, &piece.runs);
}

fn piece(reader: &mut Reader<'_>) -> Result<Piece, FrameError> {
    Ok(Piece {
        blob: BlobId(reader.u64()?),
        size_bytes: reader.u64()?,
        runs: runs(reader)?,
    })
}

fn md5(reader: &mut Reader<'_>) -> Result<[u8; 16], FrameError> {
    reader
        .bytes(16)?
        .try_into()
        .map_err(|_| malformed("short MD5"))
}

/// A replica set: `count u8 | server u16 × count`.
fn put_replicas(out: &mut Vec<u8>, replicas: &[ServerId]) {
    out.put_u8(u8::try_from(replicas.len()).expect("REPLICATION_MAX fits u8"));
    for &replica in replicas {
        out.put_u16(replica);
    }
}

fn put_object(out: &mut Vec<u8>, object: &ObjectMeta) {
    out.put_bytes(&object.md5);
    out.put_u32(object.parts_count);
    put_str(out, object.content_type.as_deref().unwrap_or(""));
    out.put_u16(u16::try_from(object.user.len()).expect("user metadata is bounded"));
    for (key, value) in &object.user {
        put_str(out, key);
        put_str(out, value);
    }
}

fn object(reader: &mut Reader<'_>) -> Result<ObjectMeta, FrameError> {
    let md5 = md5(reader)?;
    let parts_count = reader.u32()?;
    let content_type = Some(string(reader)?)
        .filter(|text| !text.is_empty())
        .map(String::into_boxed_str);
    let pairs = reader.u16()?;
    // Each pair takes 4 bytes at least: no allocation beyond the input.
    let mut user = Vec::with_capacity(usize::from(pairs).min(reader.rest().len() / 4));
    for _ in 0..pairs {
        user.push((
            string(reader)?.into_boxed_str(),
            string(reader)?.into_boxed_str(),
        ));
    }
    Ok(ObjectMeta {
        md5,
        parts_count,
        content_type,
        user: user.into(),
    })
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.put_u16(u16::try_from(text.len()).expect("names and URLs are short"));
    out.put_bytes(text.as_bytes());
}

fn replicas(reader: &mut Reader<'_>) -> Result<Vec<ServerId>, FrameError> {
    let count = reader.u8()? as usize;
    if count == 0 || count > REPLICATION_MAX {
        return Err(malformed("replica count out of range"));
    }
    (0..count).map(|_| Ok(reader.u16()?)).collect()
}

fn string(reader: &mut Reader<'_>) -> Result<String, FrameError> {
    let len = reader.u16()? as usize;
    let bytes = reader.bytes(len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("string is not UTF-8"))
}

fn name(reader: &mut Reader<'_>) -> Result<FileName, FrameError> {
    let text = string(reader)?;
    FileName::parse(&text).map_err(|err| malformed(&format!("bad name {text:?}: {err}")))
}

fn malformed(what: &str) -> FrameError {
    FrameError::Malformed(what.to_owned())
}

impl From<Short> for FrameError {
    fn from(Short: Short) -> FrameError {
        malformed("record ends early")
    }
}

#[cfg(test)]
mod tests;
