//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload and AbortMultipartUpload. Each part is stored
//! as a blob of its own (`upload::store_piece`) and recorded in the
//! uploads table (`metadata::uploads`) before it is acknowledged, so an
//! upload survives a restart of the naming server. Completing makes the
//! listed parts the pieces of one new version, in one durable change: no
//! byte is copied. The listings and expiry are in `uploads.rs`.

use std::io::{self, Read};
use std::sync::Arc;

use common::limits::FILE_BYTES_MAX;
use common::server::{Reply, STATUS_NO_CONTENT, STATUS_OK};
use md5::{Digest, Md5};
use tiny_http::Request;

use crate::download::ChunkPieces;
use crate::limits::{FAILED_UPLOAD_DRAIN_BYTES_MAX, UPLOAD_PART_BYTES_MIN, UPLOAD_PART_NUMBER_MAX};
use crate::metadata::change::{Applied, Change, Refusal};
use crate::metadata::uploads::{Part, UploadId};
use crate::metadata::version::{ObjectMeta, md5_hex};
use crate::s3::body::{ObjectBody, read_document};
use crate::s3::bucket::{self, xml_reply};
use crate::s3::copy::{PiecesReader, copy_source};
use crate::s3::error::{Code, S3Error};
use crate::s3::object::{Verdict, conditions, declared_length, etag, meta_of_request};
use crate::s3::xml::{self, Doc, Item};
use crate::s3::{Call, XML_BODY_BYTES_MAX, file_name};
use crate::upload;

/// CreateMultipartUpload: `POST /B/K?uploads`, with the object's metadata.
pub fn create(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
    key: &str,
) -> Result<Reply, S3Error> {
    let name = file_name(bucket, key)?;
    let meta = meta_of_request(call)?;
    read_document(call, request, 0)?;
    // An id never handed out before, of the blob id space: never reused.
    let id = call.naming.new_blob()?.blob.0;
    let change = Change::BeginUpload {
        id,
        name,
        started_ms: common::cluster_auth::unix_ms(),
        object: Box::new(ObjectMeta {
            md5: [0; 16],
            parts_count: 0,
            content_type: meta.content_type,
            user: meta.user.into(),
        }),
    };
    match call.naming.store().apply(change) {
        Ok(_) => {}
        Err(Refusal::TooManyUploads) => {
            return Err(S3Error::new(
                Code::ServiceUnavailable,
                "too many multipart uploads are under way: complete or abort some",
            ));
        }
        Err(other) => return Err(other.into()),
    }
    let root = "InitiateMultipartUploadResult";
    let mut doc = Doc::new(root);
    doc.element("Bucket", bucket)
        .element("Key", key)
        .element("UploadId", &upload_id_text(id));
    Ok(xml_reply(doc.finish(root)))
}

/// UploadPart: `PUT /B/K?partNumber=N&uploadId=U`, the part's bytes.
pub fn upload_part(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
    key: &str,
) -> Result<Reply, S3Error> {
    let id = upload_of(call, bucket, key)?;
    let number = part_number(call)?;
    let declared = declared_length(call, request)?;
    let payload = call.take_payload();
    let naming = call.naming;
    let mut body = ObjectBody::new(request.as_reader(), payload, &call.parts)?;
    let stored = upload::store_piece(naming, &mut body, declared, |body, piece| {
        let md5 = body.seal()?;
        add_part(
            call,
            id,
            number,
            Part {
                piece,
                md5,
                mtime_ms: common::cluster_auth::unix_ms(),
            },
        )?;
        Ok::<_, S3Error>(md5)
    });
    let refused = body.take_failure();
    drop(body);
    match stored {
        Ok(md5) => {
            Ok(Reply::empty(STATUS_OK).with_header("ETag", format!("\"{}\"", md5_hex(&md5))))
        }
        Err(err) => {
            // Read on, so a client still sending hears why (see `api.rs`).
            let _ = io::copy(
                &mut request.as_reader().take(FAILED_UPLOAD_DRAIN_BYTES_MAX),
                &mut io::sink(),
            );
            Err(refused.unwrap_or(err))
        }
    }
}

/// UploadPartCopy: UploadPart with `x-amz-copy-source` (and optionally
/// `x-amz-copy-source-range`): the part is bytes of another object,
/// streamed from its replicas.
pub fn upload_part_copy(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
    key: &str,
) -> Result<Reply, S3Error> {
    let id = upload_of(call, bucket, key)?;
    let number = part_number(call)?;
    read_document(call, request, 0)?;
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
    let bytes = match call.header("x-amz-copy-source-range") {
        None => 0..source.size_bytes,
        Some(range) => copy_range(range, source.size_bytes)?,
    };
    let len = bytes.end - bytes.start;
    let pieces = ChunkPieces::open(Arc::clone(call.naming), Arc::clone(&source), bytes)?;
    let mut body = ObjectBody::plain(PiecesReader::new(pieces));
    let mtime_ms = common::cluster_auth::unix_ms();
    let md5 = upload::store_piece(call.naming, &mut body, Some(len), |body, piece| {
        let md5 = body.seal()?;
        add_part(
            call,
            id,
            number,
            Part {
                piece,
                md5,
                mtime_ms,
            },
        )?;
        Ok::<_, S3Error>(md5)
    })?;
    let root = "CopyPartResult";
    let mut doc = Doc::new(root);
    doc.element("LastModified", &common::time::from_unix_ms(mtime_ms))
        .element("ETag", &format!("\"{}\"", md5_hex(&md5)));
    Ok(xml_reply(doc.finish(root)))
}

/// CompleteMultipartUpload: `POST /B/K?uploadId=U` with the parts to keep,
/// in order, each with the ETag its upload answered.
pub fn complete(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
    key: &str,
) -> Result<Reply, S3Error> {
    let id = upload_of(call, bucket, key)?;
    let document = read_document(call, request, XML_BODY_BYTES_MAX)?;
    let listed = listed_parts(&document)?;
    let parts = check_listed(call, id, &listed)?;
    let mut digests = Md5::new();
    for (_, md5) in &parts {
        digests.update(md5);
    }
    let md5: [u8; 16] = digests.finalize().into();
    let change = Change::CompleteUpload {
        upload: id,
        parts,
        md5,
        mtime_ms: common::cluster_auth::unix_ms(),
    };
    let naming = call.naming;
    match naming.store().apply(change) {
        Ok(Applied::Completed { replaced, unused }) => {
            if let Some(replaced) = replaced {
                naming.garbage.drop_version(replaced);
            }
            naming.garbage.drop_pieces(unused);
            naming.metrics.count(&naming.metrics.files_created_total, 1);
        }
        Err(Refusal::NoSuchUpload) => return Err(no_such_upload()),
        Err(Refusal::InvalidPart { number }) => return Err(invalid_part(number)),
        Err(other) => return Err(other.into()),
        Ok(other) => unreachable!("a completion answers {other:?}"),
    }
    let etag = ObjectMeta {
        md5,
        parts_count: u32::try_from(listed.len()).expect("at most UPLOAD_PART_NUMBER_MAX"),
        content_type: None,
        user: Box::new([]),
    }
    .etag();
    let root = "CompleteMultipartUploadResult";
    let mut doc = Doc::new(root);
    doc.element("Location", &format!("/{bucket}/{key}"))
        .element("Bucket", bucket)
        .element("Key", key)
        .element("ETag", &etag);
    Ok(xml_reply(doc.finish(root)))
}

/// AbortMultipartUpload: `DELETE /B/K?uploadId=U`; its parts are deleted.
pub fn abort(call: &Call<'_>, bucket: &str, key: &str) -> Result<Reply, S3Error> {
    let id = upload_of(call, bucket, key)?;
    abandon(call.naming, id)?;
    Ok(Reply::empty(STATUS_NO_CONTENT))
}

/// Removes upload `id` and queues its parts' chunks for deletion.
pub fn abandon(naming: &crate::naming::Naming, id: UploadId) -> Result<(), S3Error> {
    match naming.store().apply(Change::AbortUpload { upload: id }) {
        Ok(Applied::Aborted { pieces }) => {
            naming.garbage.drop_pieces(pieces);
            Ok(())
        }
        Err(Refusal::NoSuchUpload) => Err(no_such_upload()),
        Err(other) => Err(other.into()),
        other => Err(S3Error::new(Code::InternalError, format!("{other:?}"))),
    }
}

/// The upload `?uploadId=` names, which must be one of `B/K`.
pub fn upload_of(call: &Call<'_>, bucket: &str, key: &str) -> Result<UploadId, S3Error> {
    let name = file_name(bucket, key)?;
    let id = call
        .param("uploadId")
        .and_then(|text| u64::from_str_radix(text, 16).ok())
        .ok_or_else(no_such_upload)?;
    match call.naming.metadata().upload(id) {
        Some(upload) if upload.name == name => Ok(id),
        _ => Err(no_such_upload()),
    }
}

/// How an upload id is written: 16 hex digits.
pub fn upload_id_text(id: UploadId) -> String {
    format!("{id:016x}")
}

pub fn no_such_upload() -> S3Error {
    S3Error::new(
        Code::NoSuchUpload,
        "the specified multipart upload does not exist: it may have been aborted, completed or expired",
    )
}

fn invalid_part(number: u32) -> S3Error {
    S3Error::new(
        Code::InvalidPart,
        format!("part {number} was not uploaded, or its ETag is not the one given"),
    )
}

/// `?partNumber=`: 1 to `UPLOAD_PART_NUMBER_MAX`.
fn part_number(call: &Call<'_>) -> Result<u32, S3Error> {
    call.param("partNumber")
        .and_then(|text| text.parse::<u32>().ok())
        .filter(|number| (1..=UPLOAD_PART_NUMBER_MAX).contains(number))
        .ok_or_else(|| {
            S3Error::new(
                Code::InvalidArgument,
                format!("partNumber must be a whole number from 1 to {UPLOAD_PART_NUMBER_MAX}"),
            )
        })
}

fn add_part(call: &Call<'_>, id: UploadId, number: u32, part: Part) -> Result<(), S3Error> {
    let change = Change::AddPart {
        upload: id,
        number,
        part,
    };
    match call.naming.store().apply(change) {
        Ok(Applied::PartAdded { replaced }) => {
            call.naming
                .garbage
                .drop_pieces(replaced.into_iter().collect());
            Ok(())
        }
        Err(Refusal::NoSuchUpload) => Err(no_such_upload()),
        Err(other) => Err(other.into()),
        other => Err(S3Error::new(Code::InternalError, format!("{other:?}"))),
    }
}

/// `x-amz-copy-source-range: bytes=FIRST-LAST`, within the source.
fn copy_range(text: &str, size: u64) -> Result<std::ops::Range<u64>, S3Error> {
    let bad = || {
        S3Error::new(
            Code::InvalidArgument,
            "x-amz-copy-source-range must be bytes=FIRST-LAST",
        )
    };
    let (first, last) = text
        .trim()
        .strip_prefix("bytes=")
        .and_then(|spec| spec.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if first > last {
        return Err(bad());
    }
    if last >= size {
        return Err(S3Error::new(
            Code::InvalidRange,
            format!("the copy source range is past the end of its {size} bytes"),
        ));
    }
    Ok(first..last + 1)
}

/// The parts a completion document lists: (number, ETag) in its order.
fn listed_parts(document: &[u8]) -> Result<Vec<(u32, String)>, S3Error> {
    let malformed = |detail: &str| {
        S3Error::new(
            Code::MalformedXML,
            format!("the XML you provided was not well-formed or did not validate: {detail}"),
        )
    };
    let mut listed = Vec::new();
    let (mut number, mut etag) = (None, None);
    for item in xml::parse(document)? {
        match item {
            Item::Text { path, text } if path == "CompleteMultipartUpload/Part/PartNumber" => {
                number = Some(
                    text.trim()
                        .parse::<u32>()
                        .map_err(|_| malformed("a PartNumber"))?,
                );
            }
            Item::Text { path, text } if path == "CompleteMultipartUpload/Part/ETag" => {
                etag = Some(text);
            }
            Item::End { path } if path == "CompleteMultipartUpload/Part" => {
                match (number.take(), etag.take()) {
                    (Some(number), Some(etag)) => listed.push((number, etag)),
                    _ => return Err(malformed("a Part without its PartNumber and ETag")),
                }
                if listed.len() > UPLOAD_PART_NUMBER_MAX as usize {
                    return Err(malformed("more parts than an upload can hold"));
                }
            }
            _ => {}
        }
    }
    if listed.is_empty() {
        return Err(malformed("no Part is listed"));
    }
    Ok(listed)
}

/// The listed parts as the completion records them, checked against what
/// is stored: ascending, each stored with that ETag, each but the last at
/// least `UPLOAD_PART_BYTES_MIN`, the whole within `FILE_BYTES_MAX`.
fn check_listed(
    call: &Call<'_>,
    id: UploadId,
    listed: &[(u32, String)],
) -> Result<Vec<(u32, [u8; 16])>, S3Error> {
    if !listed.is_sorted_by(|a, b| a.0 < b.0) {
        return Err(S3Error::new(
            Code::InvalidPartOrder,
            "the list of parts was not in ascending order, or listed a part twice",
        ));
    }
    let metadata = call.naming.metadata();
    let upload = metadata.upload(id).ok_or_else(no_such_upload)?;
    let mut parts = Vec::with_capacity(listed.len());
    let mut total_bytes = 0u64;
    for (idx, (number, etag)) in listed.iter().enumerate() {
        let part = upload
            .parts
            .get(number)
            .filter(|part| md5_hex(&part.md5) == etag.trim().trim_matches('"').to_ascii_lowercase())
            .ok_or_else(|| invalid_part(*number))?;
        let size = part.piece.size_bytes;
        if idx + 1 < listed.len() && size < UPLOAD_PART_BYTES_MIN {
            return Err(S3Error::new(
                Code::EntityTooSmall,
                format!(
                    "part {number} has {size} bytes: every part but the last needs {UPLOAD_PART_BYTES_MIN}"
                ),
            ));
        }
        total_bytes += size;
        parts.push((*number, part.md5));
    }
    if total_bytes > FILE_BYTES_MAX {
        return Err(S3Error::new(
            Code::EntityTooLarge,
            format!("the parts hold {total_bytes} bytes; an object holds at most {FILE_BYTES_MAX}"),
        ));
    }
    Ok(parts)
}
