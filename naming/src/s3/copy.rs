//! CopyObject: the source's bytes streamed from its replicas into a new
//! version of the target through `upload` (a version's chunks are never
//! shared, so a copy is a copy), with the source's metadata or the
//! request's (`x-amz-metadata-directive`), under the source's conditions
//! (`x-amz-copy-source-if-*`).

use std::io::{self, Read};
use std::sync::Arc;

use common::server::Reply;

use crate::download::ChunkPieces;
use crate::s3::body::ObjectBody;
use crate::s3::bucket::{self, xml_reply};
use crate::s3::error::{Code, S3Error};
use crate::s3::object::{RequestMeta, Verdict, conditions, etag, meta_of_request, seal};
use crate::s3::xml::Doc;
use crate::s3::{Call, file_name};
use crate::upload;

/// CopyObject: the source's bytes streamed into a new version of the
/// target (a version's chunks are never shared), its metadata copied or
/// replaced (`x-amz-metadata-directive`).
pub fn copy(call: &mut Call<'_>, bucket: &str, key: &str) -> Result<Reply, S3Error> {
    let (source_bucket, source_key) = copy_source(call)?;
    call.check_reaches(&source_bucket)?;
    bucket::require(call, &source_bucket)?;
    let source_name = file_name(&source_bucket, &source_key)?;
    let source = call
        .naming
        .metadata()
        .get(&source_name)
        .ok_or_else(|| S3Error::new(Code::NoSuchKey, "the copy source does not exist"))?;
    if conditions(call, "x-amz-copy-source-", &etag(&source), source.mtime_ms) != Verdict::Go {
        return Err(S3Error::new(
            Code::PreconditionFailed,
            "at least one of the copy source's preconditions did not hold",
        ));
    }
    let target = file_name(bucket, key)?;
    let replace = match call.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(other) => {
            return Err(S3Error::new(
                Code::InvalidArgument,
                format!("x-amz-metadata-directive {other:?} is neither COPY nor REPLACE"),
            ));
        }
    };
    if target == source_name && !replace {
        return Err(S3Error::new(
            Code::InvalidRequest,
            "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata",
        ));
    }
    let meta = match (replace, &source.object) {
        (true, _) => meta_of_request(call)?,
        (false, Some(object)) => RequestMeta {
            content_type: object.content_type.clone(),
            user: object.user.to_vec(),
        },
        (false, None) => RequestMeta {
            content_type: None,
            user: Vec::new(),
        },
    };
    let reservation = upload::reserve(call.naming, target, true, Some(source.size_bytes))?;
    let pieces = ChunkPieces::open(
        Arc::clone(call.naming),
        Arc::clone(&source),
        0..source.size_bytes,
    )?;
    let mut body = ObjectBody::plain(PiecesReader::new(pieces));
    let mut etag_out = String::new();
    let mut mtime_out = 0;
    reservation.upload_sealed(&mut body, |body, version| {
        let object = seal(body, meta)?;
        etag_out = object.etag();
        // The time the new version carries: what GET and listings say.
        mtime_out = version.mtime_ms;
        Ok(Some(object))
    })?;
    let root = "CopyObjectResult";
    let mut doc = Doc::new(root);
    doc.element("LastModified", &common::time::from_unix_ms(mtime_out))
        .element("ETag", &etag_out);
    Ok(xml_reply(doc.finish(root)))
}

/// `x-amz-copy-source`: `[/]BUCKET/KEY`, percent-encoded, of the current
/// version (`?versionId=null` at most: there are no others).
pub fn copy_source(call: &Call<'_>) -> Result<(String, String), S3Error> {
    let raw = call.header("x-amz-copy-source").unwrap_or("");
    let (path, version) = raw.split_once('?').unwrap_or((raw, ""));
    if !version.is_empty() && version != "versionId=null" {
        return Err(S3Error::new(
            Code::InvalidArgument,
            "versioning is not enabled: the copy source has only its current version",
        ));
    }
    let decoded = common::percent::decode(path)
        .map_err(|err| S3Error::new(Code::InvalidArgument, format!("x-amz-copy-source: {err}")))?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            bucket::check_name_reachable(bucket)?;
            Ok((bucket.to_owned(), key.to_owned()))
        }
        _ => Err(S3Error::new(
            Code::InvalidArgument,
            "x-amz-copy-source must be BUCKET/KEY",
        )),
    }
}

/// A version's bytes as a `Read`, batch by batch.
pub struct PiecesReader {
    pieces: ChunkPieces,
    buffer: Vec<u8>,
    at: usize,
}

impl PiecesReader {
    pub fn new(pieces: ChunkPieces) -> PiecesReader {
        PiecesReader {
            pieces,
            buffer: Vec::new(),
            at: 0,
        }
    }
}

impl Read for PiecesReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use common::server::Pieces;
        if self.at == self.buffer.len() {
            self.at = 0;
            if !self.pieces.next_piece(&mut self.buffer)? {
                return Ok(0);
            }
        }
        let copied = out.len().min(self.buffer.len() - self.at);
        out[..copied].copy_from_slice(&self.buffer[self.at..self.at + copied]);
        self.at += copied;
        Ok(copied)
    }
}
