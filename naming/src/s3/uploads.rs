//! The listings of multipart uploads under way, ListParts and
//! ListMultipartUploads, and their expiry: an upload neither completed nor
//! aborted after `S3_UPLOAD_EXPIRY_MS` is abandoned and its parts deleted
//! (from the upkeep thread), as S3's lifecycle rule
//! `AbortIncompleteMultipartUpload` does.

use std::time::Duration;

use common::server::Reply;

use crate::metadata::uploads::UploadId;
use crate::metadata::version::md5_hex;
use crate::naming::Naming;
use crate::s3::Call;
use crate::s3::bucket::{self, xml_reply};
use crate::s3::error::{Code, S3Error};
use crate::s3::multipart::{abandon, upload_id_text, upload_of};
use crate::s3::xml::Doc;

/// The most parts or uploads a listing page holds (S3's limit and default).
pub const LIST_UPLOADS_MAX: usize = 1000;

/// ListParts: `GET /B/K?uploadId=U`, from `part-number-marker`, a page of
/// `max-parts`.
pub fn list_parts(call: &Call<'_>, bucket: &str, key: &str) -> Result<Reply, S3Error> {
    let id = upload_of(call, bucket, key)?;
    let max_parts = page_size(call, "max-parts")?;
    let marker: u32 = match call.param("part-number-marker") {
        None | Some("") => 0,
        Some(text) => text.parse().map_err(|_| {
            S3Error::new(
                Code::InvalidArgument,
                "part-number-marker is not a whole number",
            )
        })?,
    };
    let metadata = call.naming.metadata();
    let upload = metadata
        .upload(id)
        .ok_or_else(crate::s3::multipart::no_such_upload)?;
    let mut after = upload.parts.range(marker.saturating_add(1)..);
    let page: Vec<_> = after.by_ref().take(max_parts).collect();
    let truncated = after.next().is_some();
    let root = "ListPartsResult";
    let mut doc = Doc::new(root);
    doc.element("Bucket", bucket)
        .element("Key", key)
        .element("UploadId", &upload_id_text(id));
    owner(&mut doc, "Initiator");
    owner(&mut doc, "Owner");
    doc.element("StorageClass", "STANDARD")
        .element("PartNumberMarker", &marker.to_string())
        .element(
            "NextPartNumberMarker",
            &page
                .last()
                .map_or(marker, |(number, _)| **number)
                .to_string(),
        )
        .element("MaxParts", &max_parts.to_string())
        .element("IsTruncated", if truncated { "true" } else { "false" });
    for (number, part) in page {
        doc.open("Part")
            .element("PartNumber", &number.to_string())
            .element("LastModified", &common::time::from_unix_ms(part.mtime_ms))
            .element("ETag", &format!("\"{}\"", md5_hex(&part.md5)))
            .element("Size", &part.piece.size_bytes.to_string())
            .close("Part");
    }
    Ok(xml_reply(doc.finish(root)))
}

/// One upload as a listing shows it.
struct Listed {
    key: String,
    id: UploadId,
    started_ms: u64,
}

/// ListMultipartUploads: `GET /B?uploads`, sorted by key then by when each
/// began, with `prefix`, `delimiter`, `key-marker`, `upload-id-marker` and
/// `max-uploads`.
pub fn list_uploads(call: &Call<'_>, bucket: &str) -> Result<Reply, S3Error> {
    bucket::require(call, bucket)?;
    let max_uploads = page_size(call, "max-uploads")?;
    let prefix = call.param("prefix").unwrap_or("");
    let delimiter = call.param("delimiter").unwrap_or("");
    let key_marker = call.param("key-marker").unwrap_or("");
    let id_marker = match call.param("upload-id-marker") {
        None | Some("") => None,
        Some(text) => Some(u64::from_str_radix(text, 16).map_err(|_| {
            S3Error::new(
                Code::InvalidArgument,
                "upload-id-marker is not an upload id",
            )
        })?),
    };
    let bucket_dir = format!("{bucket}/");
    let mut uploads: Vec<Listed> = call
        .naming
        .metadata()
        .uploads()
        .filter_map(|(id, upload)| {
            let key = upload.name.as_str().strip_prefix(&bucket_dir)?;
            Some(Listed {
                key: key.to_owned(),
                id,
                started_ms: upload.started_ms,
            })
        })
        .filter(|listed| listed.key.starts_with(prefix))
        .collect();
    // Ids are handed out in order: by id is by when each began.
    uploads.sort_by(|a, b| (&a.key, a.id).cmp(&(&b.key, b.id)));
    let past_marker = |listed: &Listed| match id_marker {
        _ if key_marker.is_empty() => true,
        Some(id) => (listed.key.as_str(), listed.id) > (key_marker, id),
        None => {
            // A marker that is a common prefix skips everything under it.
            let under_prefix_marker = !delimiter.is_empty()
                && key_marker.ends_with(delimiter)
                && listed.key.starts_with(key_marker);
            listed.key.as_str() > key_marker && !under_prefix_marker
        }
    };
    let mut listed: Vec<&Listed> = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut next: Option<(String, Option<UploadId>)> = None;
    for upload in uploads.iter().filter(|listed| past_marker(listed)) {
        let common = match delimiter {
            "" => None,
            delimiter => upload.key[prefix.len()..]
                .find(delimiter)
                .map(|at| upload.key[..prefix.len() + at + delimiter.len()].to_owned()),
        };
        if let Some(common) = &common
            && prefixes.last() == Some(common)
        {
            continue;
        }
        if listed.len() + prefixes.len() == max_uploads {
            truncated = true;
            break;
        }
        match common {
            Some(common) => {
                next = Some((common.clone(), None));
                prefixes.push(common);
            }
            None => {
                next = Some((upload.key.clone(), Some(upload.id)));
                listed.push(upload);
            }
        }
    }
    let root = "ListMultipartUploadsResult";
    let mut doc = Doc::new(root);
    doc.element("Bucket", bucket)
        .element("KeyMarker", key_marker)
        .element(
            "UploadIdMarker",
            &id_marker.map(upload_id_text).unwrap_or_default(),
        );
    if truncated && let Some((key, id)) = &next {
        doc.element("NextKeyMarker", key).element(
            "NextUploadIdMarker",
            &id.map(upload_id_text).unwrap_or_default(),
        );
    }
    if !prefix.is_empty() {
        doc.element("Prefix", prefix);
    }
    if !delimiter.is_empty() {
        doc.element("Delimiter", delimiter);
    }
    doc.element("MaxUploads", &max_uploads.to_string())
        .element("IsTruncated", if truncated { "true" } else { "false" });
    for upload in listed {
        doc.open("Upload")
            .element("Key", &upload.key)
            .element("UploadId", &upload_id_text(upload.id));
        owner(&mut doc, "Initiator");
        owner(&mut doc, "Owner");
        doc.element("StorageClass", "STANDARD")
            .element("Initiated", &common::time::from_unix_ms(upload.started_ms))
            .close("Upload");
    }
    for prefix in &prefixes {
        doc.open("CommonPrefixes")
            .element("Prefix", prefix)
            .close("CommonPrefixes");
    }
    Ok(xml_reply(doc.finish(root)))
}

/// Abandons every upload begun more than `expiry` ago; how many.
pub fn expire(naming: &Naming, expiry: Duration) -> usize {
    let expiry_ms = u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX);
    let now_ms = common::cluster_auth::unix_ms();
    let expired: Vec<UploadId> = naming
        .metadata()
        .uploads()
        .filter(|(_, upload)| upload.started_ms.saturating_add(expiry_ms) <= now_ms)
        .map(|(id, _)| id)
        .collect();
    let mut count = 0;
    for id in expired {
        // One completed or aborted meanwhile is not there to expire.
        if abandon(naming, id).is_ok() {
            log::info!(
                "s3: multipart upload {} expired; its parts are deleted",
                upload_id_text(id)
            );
            count += 1;
        }
    }
    count
}

/// `max-parts` or `max-uploads`: at most `LIST_UPLOADS_MAX`.
fn page_size(call: &Call<'_>, param: &str) -> Result<usize, S3Error> {
    match call.param(param) {
        None => Ok(LIST_UPLOADS_MAX),
        Some(raw) => raw
            .parse::<usize>()
            .map(|size| size.min(LIST_UPLOADS_MAX))
            .map_err(|_| {
                S3Error::new(
                    Code::InvalidArgument,
                    format!("{param} is not a whole number"),
                )
            }),
    }
}

fn owner(doc: &mut Doc, tag: &str) {
    doc.open(tag)
        .element("ID", "harbour")
        .element("DisplayName", "harbour")
        .close(tag);
}
