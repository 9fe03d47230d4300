//! Objects: PutObject, GetObject and HeadObject (ranges, conditions),
//! DeleteObject, DeleteObjects and CopyObject, each on the file `B/K`
//! through the same doors as the native API (`upload`, `download`,
//! `Naming::delete`). The metadata S3 clients store (Content-Type, the
//! standard headers, `x-amz-meta-*`) and the MD5 travel with the version
//! (`ObjectMeta`). A key ending in `/` is a directory: its folder marker.

use std::io::{self, Read};
use std::sync::Arc;

use common::server::{Reply, STATUS_NO_CONTENT, STATUS_OK, STATUS_PARTIAL_CONTENT};
use tiny_http::{Method, Request};

use crate::download;
use crate::error::ApiError;
use crate::limits::FAILED_UPLOAD_DRAIN_BYTES_MAX;
use crate::metadata::change::Refusal;
use crate::metadata::version::{FileVersion, ObjectMeta};
use crate::range::{self, RangeAsk};
use crate::s3::body::{ObjectBody, read_document};
use crate::s3::bucket::{self, xml_reply};
use crate::s3::error::{Code, S3Error};
use crate::s3::xml::{self, Doc, Item};
use crate::s3::{Call, XML_BODY_BYTES_MAX, copy, file_name, multipart, not_allowed, uploads};
use crate::upload;

/// The ETag of no bytes (a folder marker's).
pub const EMPTY_ETAG: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";

/// The most bytes of `x-amz-meta-*` names and values an object keeps
/// (S3's limit).
pub const USER_METADATA_BYTES_MAX: usize = 2048;

/// The most keys of one DeleteObjects (S3's limit).
pub const DELETE_KEYS_MAX: usize = 1000;

/// Standard headers kept with an object and answered with it, stored
/// among its metadata as `:NAME` (no `x-amz-meta-` name can start so).
const STORED_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

const CONTENT_TYPE_DEFAULT: &str = "binary/octet-stream";

/// The ETag of a version: its MD5 when an S3 client stored it, else its
/// blob id (a version written natively has no MD5; the blob names it as
/// uniquely, and is not mistaken for an MD5).
pub fn etag(version: &FileVersion) -> String {
    match &version.object {
        Some(object) => object.etag(),
        None => format!("\"{}\"", version.first_blob()),
    }
}

/// The object operations on `/BUCKET/KEY`.
pub fn call(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
    key: &str,
    method: &Method,
) -> Result<Reply, S3Error> {
    if call.has("uploadId") {
        return match method {
            Method::Put if call.header("x-amz-copy-source").is_some() => {
                multipart::upload_part_copy(call, request, bucket, key)
            }
            Method::Put => multipart::upload_part(call, request, bucket, key),
            Method::Post => multipart::complete(call, request, bucket, key),
            Method::Delete => multipart::abort(call, bucket, key),
            Method::Get => uploads::list_parts(call, bucket, key),
            _ => Err(not_allowed()),
        };
    }
    if call.has("uploads") {
        return match method {
            Method::Post => multipart::create(call, request, bucket, key),
            _ => Err(not_allowed()),
        };
    }
    match method {
        Method::Put if call.header("x-amz-copy-source").is_some() => copy::copy(call, bucket, key),
        Method::Put => put(call, request, bucket, key),
        Method::Get => get(call, bucket, key, false),
        Method::Head => get(call, bucket, key, true),
        Method::Delete => {
            delete_key(call, bucket, key)?;
            Ok(Reply::empty(STATUS_NO_CONTENT))
        }
        _ => Err(not_allowed()),
    }
}

/// The metadata a request gives an object: its Content-Type, and the
/// standard headers and `x-amz-meta-*` as `ObjectMeta::user` keeps them.
pub(super) struct RequestMeta {
    pub(super) content_type: Option<Box<str>>,
    pub(super) user: Vec<(Box<str>, Box<str>)>,
}

/// The metadata a PUT (or a copy that replaces it) gives the object.
pub(super) fn meta_of_request(call: &Call<'_>) -> Result<RequestMeta, S3Error> {
    let content_type = call.header("content-type").map(Box::from);
    let mut user: Vec<(Box<str>, Box<str>)> = Vec::new();
    let mut user_bytes = 0;
    for (name, value) in call.parts.headers {
        if let Some(meta) = name.strip_prefix("x-amz-meta-") {
            user_bytes += meta.len() + value.len();
            user.push((meta.into(), value.trim().into()));
        } else if STORED_HEADERS.contains(&name.as_str()) {
            // The transfer's own encoding is not the object's.
            let value: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|part| *part != "aws-chunked" && !part.is_empty())
                .collect();
            if !value.is_empty() {
                user.push((format!(":{name}").into(), value.join(", ").into()));
            }
        }
    }
    if user_bytes > USER_METADATA_BYTES_MAX {
        return Err(S3Error::new(
            Code::MetadataTooLarge,
            format!("x-amz-meta-* headers are at most {USER_METADATA_BYTES_MAX} bytes"),
        ));
    }
    user.sort();
    user.dedup_by(|later, earlier| later.0 == earlier.0);
    Ok(RequestMeta { content_type, user })
}

/// PutObject.
fn put(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
    key: &str,
) -> Result<Reply, S3Error> {
    if key.ends_with('/') {
        return put_marker(call, request, bucket, key);
    }
    let name = file_name(bucket, key)?;
    let meta = meta_of_request(call)?;
    let declared = declared_length(call, request)?;
    let reservation = upload::reserve(call.naming, name, true, declared)?;
    let payload = call.take_payload();
    let mut body = ObjectBody::new(request.as_reader(), payload, &call.parts)?;
    let mut etag_out = String::new();
    let stored = reservation.upload_sealed(&mut body, |body, _| {
        let object = seal(body, meta)?;
        etag_out = object.etag();
        Ok(Some(object))
    });
    let refused = body.take_failure();
    drop(body);
    match stored {
        Ok(_) => Ok(Reply::empty(STATUS_OK).with_header("ETag", etag_out)),
        Err(err) => {
            // Read on, so a client still sending hears why (see `api.rs`).
            let _ = io::copy(
                &mut request.as_reader().take(FAILED_UPLOAD_DRAIN_BYTES_MAX),
                &mut io::sink(),
            );
            Err(refused.unwrap_or_else(|| err.into()))
        }
    }
}

/// The metadata of an object whose body is all stored: its digests
/// checked (a failure is kept for `take_failure`), `meta` and its MD5.
pub(super) fn seal<R: Read>(
    body: &mut ObjectBody<R>,
    meta: RequestMeta,
) -> Result<Box<ObjectMeta>, ApiError> {
    let md5 = body
        .seal()
        .map_err(|err| ApiError::BadRequest(body.refuse(err).to_string()))?;
    Ok(Box::new(ObjectMeta {
        md5,
        parts_count: 0,
        content_type: meta.content_type,
        user: meta.user.into(),
    }))
}

/// The object's length: `x-amz-decoded-content-length` under aws-chunked,
/// else the Content-Length (`None`: sent chunked).
pub(super) fn declared_length(call: &Call<'_>, request: &Request) -> Result<Option<u64>, S3Error> {
    let missing = || {
        S3Error::new(
            Code::MissingContentLength,
            "you must provide the Content-Length HTTP header",
        )
    };
    if let Some(decoded) = call.header("x-amz-decoded-content-length") {
        return decoded.trim().parse().map(Some).map_err(|_| missing());
    }
    match (request.body_length(), common::server::is_chunked(request)) {
        (Some(len), _) => Ok(Some(len as u64)),
        (None, true) => Ok(None),
        (None, false) => Err(missing()),
    }
}

/// A PUT of `KEY/`: the directory, explicit; it holds no bytes.
fn put_marker(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
    key: &str,
) -> Result<Reply, S3Error> {
    file_name(bucket, key.trim_end_matches('/'))?;
    let document = read_document(call, request, 0).map_err(|err| match err.code {
        Code::EntityTooLarge => S3Error::new(
            Code::InvalidArgument,
            "a key ending in / is a directory: it holds no bytes",
        ),
        _ => err,
    })?;
    debug_assert!(document.is_empty());
    let path = format!("{bucket}/{key}");
    match call.naming.make_dir(&path) {
        Ok(()) => {}
        Err(Refusal::NameTaken) if call.naming.metadata().dir_exists(&path) => {}
        Err(Refusal::NameTaken) => {
            return Err(S3Error::new(
                Code::InvalidArgument,
                format!(
                    "{} is a file: Harbour cannot also make it a directory",
                    path.trim_end_matches('/')
                ),
            ));
        }
        Err(other) => return Err(S3Error::new(Code::InvalidArgument, other.to_string())),
    }
    Ok(Reply::empty(STATUS_OK).with_header("ETag", EMPTY_ETAG))
}

/// What the conditional headers say of a version with `etag` and `mtime_ms`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Go,
    NotModified,
    PreconditionFailed,
}

/// RFC 9110's order: `If-Match`, else `If-Unmodified-Since`; then
/// `If-None-Match`, else `If-Modified-Since`. `prefix` is `""`, or
/// `x-amz-copy-source-` for a copy's conditions (which only fail).
pub(super) fn conditions(call: &Call<'_>, prefix: &str, etag: &str, mtime_ms: u64) -> Verdict {
    let header = |name: &str| call.header(&format!("{prefix}{name}"));
    let matches = |list: &str| {
        list.split(',').map(str::trim).any(|tag| {
            tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == etag.trim_matches('"')
        })
    };
    let date = |name: &str| header(name).and_then(common::time::parse_http_date);
    let mtime_secs = mtime_ms / 1000;
    let failed = || match prefix {
        "" => Verdict::NotModified,
        _ => Verdict::PreconditionFailed,
    };
    match header("if-match") {
        Some(list) if !matches(list) => return Verdict::PreconditionFailed,
        Some(_) => {}
        None => {
            if date("if-unmodified-since").is_some_and(|since| mtime_secs > since / 1000) {
                return Verdict::PreconditionFailed;
            }
        }
    }
    match header("if-none-match") {
        Some(list) if matches(list) => return failed(),
        Some(_) => {}
        None => {
            if date("if-modified-since").is_some_and(|since| mtime_secs <= since / 1000) {
                return failed();
            }
        }
    }
    Verdict::Go
}

/// GetObject and HeadObject.
fn get(call: &Call<'_>, bucket: &str, key: &str, head_only: bool) -> Result<Reply, S3Error> {
    let no_such_key = || S3Error::new(Code::NoSuchKey, "the specified key does not exist");
    if key.ends_with('/') {
        let path = format!("{bucket}/{key}");
        file_name(bucket, key.trim_end_matches('/'))?;
        if !call.naming.metadata().dir_exists(&path) {
            return Err(no_such_key());
        }
        return Ok(
            Reply::bytes(STATUS_OK, "application/x-directory", Vec::new())
                .with_header("ETag", EMPTY_ETAG)
                .with_header("Last-Modified", common::time::http_date(0)),
        );
    }
    let name = file_name(bucket, key)?;
    let version = call.naming.metadata().get(&name).ok_or_else(no_such_key)?;
    let etag = etag(&version);
    let size = version.size_bytes;
    let mtime_ms = version.mtime_ms;
    match conditions(call, "", &etag, mtime_ms) {
        Verdict::Go => {}
        Verdict::NotModified => {
            return Ok(Reply::empty(304)
                .with_header("ETag", etag)
                .with_header("Last-Modified", common::time::http_date(mtime_ms)));
        }
        Verdict::PreconditionFailed => {
            return Err(S3Error::new(
                Code::PreconditionFailed,
                "at least one of the preconditions you specified did not hold",
            ));
        }
    }
    let (status, bytes) = match range::parse(call.header("range"), size) {
        RangeAsk::Whole => (STATUS_OK, 0..size),
        RangeAsk::Part(part) => (STATUS_PARTIAL_CONTENT, part),
        RangeAsk::Unsatisfiable => {
            return Err(S3Error::new(
                Code::InvalidRange,
                format!("the requested range is not satisfiable: the object has {size} bytes"),
            ));
        }
    };
    let len = bytes.end - bytes.start;
    let mut reply = match head_only {
        true => Reply::stream(
            status,
            CONTENT_TYPE_DEFAULT,
            Box::new(io::empty()),
            Some(len),
        ),
        false => download::answer(
            Arc::clone(call.naming),
            Arc::clone(&version),
            bytes.clone(),
            status,
        )?,
    };
    if status == STATUS_PARTIAL_CONTENT {
        reply = reply.with_header("Content-Range", range::content_range(&bytes, size));
    }
    reply = reply
        .with_header("ETag", etag)
        .with_header("Last-Modified", common::time::http_date(mtime_ms))
        .with_header("Accept-Ranges", "bytes")
        .with_content_type(
            version
                .object
                .as_ref()
                .and_then(|object| object.content_type.as_deref())
                .unwrap_or(CONTENT_TYPE_DEFAULT)
                .to_owned(),
        );
    if let Some(object) = &version.object {
        for (name, value) in object.user.iter() {
            reply = match name.strip_prefix(':') {
                Some(standard) => reply.with_header(standard.to_owned(), value.to_string()),
                None => reply.with_header(format!("x-amz-meta-{name}"), value.to_string()),
            };
        }
    }
    // What a presigned link asks the answer to say (`response-*`).
    for (param, header) in [
        ("response-content-type", "Content-Type"),
        ("response-content-disposition", "Content-Disposition"),
        ("response-cache-control", "Cache-Control"),
        ("response-content-encoding", "Content-Encoding"),
        ("response-content-language", "Content-Language"),
        ("response-expires", "Expires"),
    ] {
        if let Some(value) = call.param(param) {
            reply = match header {
                "Content-Type" => reply.with_content_type(value.to_owned()),
                header => reply.with_header(header, value.to_owned()),
            };
        }
    }
    Ok(reply)
}

/// DeleteObject of one key: done whether or not it existed, as in S3.
fn delete_key(call: &Call<'_>, bucket: &str, key: &str) -> Result<(), S3Error> {
    if key.ends_with('/') {
        file_name(bucket, key.trim_end_matches('/'))?;
        // The marker goes; what is under it stays (and keeps the
        // directory, implicitly).
        return match call.naming.remove_dir(&format!("{bucket}/{key}"), true) {
            Ok(()) | Err(Refusal::NoSuchFile) => Ok(()),
            Err(other) => Err(other.into()),
        };
    }
    let name = file_name(bucket, key)?;
    if let Some(removed) = call.naming.delete(&name)? {
        call.naming.garbage.drop_version(removed);
        call.naming
            .metrics
            .count(&call.naming.metrics.files_deleted_total, 1);
    }
    Ok(())
}

/// DeleteObjects: up to 1,000 keys of one bucket.
pub fn delete_many(
    call: &mut Call<'_>,
    request: &mut Request,
    bucket: &str,
) -> Result<Reply, S3Error> {
    bucket::require(call, bucket)?;
    let document = read_document(call, request, XML_BODY_BYTES_MAX)?;
    let mut quiet = false;
    let mut keys = Vec::new();
    let mut key = None;
    for item in xml::parse(&document)? {
        match item {
            Item::Text { path, text } if path == "Delete/Quiet" => quiet = text.trim() == "true",
            Item::Text { path, text } if path == "Delete/Object/Key" => key = Some(text),
            Item::End { path } if path == "Delete/Object" => {
                keys.push(key.take().ok_or_else(|| {
                    S3Error::new(Code::MalformedXML, "an Object without its Key")
                })?);
            }
            _ => {}
        }
    }
    if keys.len() > DELETE_KEYS_MAX {
        return Err(S3Error::new(
            Code::MalformedXML,
            format!("at most {DELETE_KEYS_MAX} keys per DeleteObjects"),
        ));
    }
    let root = "DeleteResult";
    let mut doc = Doc::new(root);
    for key in &keys {
        match delete_key(call, bucket, key) {
            Ok(()) if quiet => {}
            Ok(()) => {
                doc.open("Deleted").element("Key", key).close("Deleted");
            }
            Err(err) => {
                doc.open("Error")
                    .element("Key", key)
                    .element("Code", &format!("{:?}", err.code))
                    .element("Message", &err.message)
                    .close("Error");
            }
        }
    }
    Ok(xml_reply(doc.finish(root)))
}
