//! The S3 API, on its own listener (`S3_LISTEN_ADDR`) beside the public
//! API: path-style addressing, `/BUCKET/KEY`, where bucket B is the
//! top-level directory `B/` and object key K is the Harbour file `B/K` (a
//! key ending in `/` is the directory itself, a folder marker). Every
//! request is checked by SigV4 (`sigv4.rs`) against the S3 keys
//! (`keys.rs`) before anything is read or done; then one match on
//! (target, method, sub-resource) picks the operation: buckets
//! (`bucket.rs`), listings (`list.rs`), objects (`object.rs`, copies in
//! `copy.rs`). Errors are
//! S3's codes (`error.rs`), answers S3's XML (`xml.rs`).

pub mod body;
mod bucket;
pub mod checksum;
pub mod chunked;
mod copy;
pub mod encoding;
pub mod error;
pub mod keys;
mod list;
mod multipart;
mod object;
pub mod sigv4;
pub mod uploads;
pub mod xml;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::io::Read;

use common::limits::UNREAD_BODY_DRAIN_BYTES_MAX;
use common::name::FileName;
use common::percent;
use common::server::{self, Handler, Reply};
use tiny_http::{Method, Request};

use crate::naming::Naming;

use self::error::{Code, S3Error};
use self::keys::{Access, S3Key, S3Keys};
use self::sigv4::{Payload, RequestParts};

/// The region the S3 API says it is in when `S3_REGION` is unset.
pub const REGION_DEFAULT: &str = "us-east-1";

/// The largest request document (DeleteObjects of 1,000 long keys,
/// CompleteMultipartUpload of 10,000 parts) read into memory.
pub const XML_BODY_BYTES_MAX: u64 = 2 * 1024 * 1024;

pub struct S3Api {
    pub naming: Arc<Naming>,
    pub keys: S3Keys,
    pub region: String,
    requests_seen: AtomicU64,
}

impl S3Api {
    pub fn new(naming: Arc<Naming>, keys: S3Keys, region: String) -> S3Api {
        S3Api {
            naming,
            keys,
            region,
            requests_seen: AtomicU64::new(0),
        }
    }
}

/// What a request addresses.
#[derive(Debug)]
pub enum Target {
    /// `/`: the bucket listing.
    Service,
    Bucket(String),
    Object {
        bucket: String,
        key: String,
    },
}

/// One authenticated S3 request, as the operations see it.
pub struct Call<'a> {
    pub naming: &'a Arc<Naming>,
    pub region: &'a str,
    pub parts: RequestParts<'a>,
    /// The query, percent-decoded.
    pub query: Vec<(String, String)>,
    pub key: &'a S3Key,
    /// What the body owes, for the operation that reads it.
    pub payload: Option<Payload>,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.header(name)
    }

    /// Whether the key reaches `bucket` (a key limited to named buckets).
    pub fn check_reaches(&self, bucket: &str) -> Result<(), S3Error> {
        match self.key.reaches(Some(bucket)) {
            true => Ok(()),
            false => Err(S3Error::new(
                Code::AccessDenied,
                format!("this access key does not reach bucket {bucket}"),
            )),
        }
    }

    /// The body's payload mode; an operation reads the body once.
    pub fn take_payload(&mut self) -> Payload {
        self.payload.take().unwrap_or(Payload::Unsigned)
    }
}

/// Sub-resources of S3 this server does not implement: answered
/// `NotImplemented` rather than mistaken for a plain GET or PUT.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "versions",
    "website",
];

impl Handler for S3Api {
    fn handle(&self, request: &mut Request) -> Reply {
        let id = self.requests_seen.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("{:016X}", id ^ 0x4842_5200_0000_0000);
        let resource = server::url_path(request).to_owned();
        let mut principal = None;
        let reply = match self.route(request, &mut principal) {
            Ok(reply) => reply,
            Err(err) => {
                // A refusal before the body was read (a bad digest header,
                // a key Harbour cannot hold) reads a small body anyway, so
                // the connection lives on and the client, which may be
                // sending it already, hears the answer instead of a reset.
                let _ = std::io::copy(
                    &mut request.as_reader().take(UNREAD_BODY_DRAIN_BYTES_MAX as u64),
                    &mut std::io::sink(),
                );
                if err.code.status() >= 500 {
                    log::error!("s3 {} {resource}: {err}", request.method());
                } else {
                    log::debug!("s3 {} {resource}: {err}", request.method());
                }
                err.reply(&resource, &request_id)
            }
        };
        reply
            .with_header("x-amz-request-id", request_id)
            .with_principal(principal.as_deref())
    }

    fn endpoint(&self, request: &Request) -> &'static str {
        let path = server::url_path(request);
        match path.trim_start_matches('/').split_once('/') {
            _ if path == "/" => "s3:/",
            None | Some((_, "")) => "s3:/{bucket}",
            Some(_) => "s3:/{bucket}/{key}",
        }
    }
}

impl S3Api {
    fn route(
        &self,
        request: &mut Request,
        principal: &mut Option<String>,
    ) -> Result<Reply, S3Error> {
        let method = request.method().clone();
        let url = request.url().to_owned();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|header| {
                (
                    header.field.as_str().as_str().to_ascii_lowercase(),
                    header.value.as_str().to_owned(),
                )
            })
            .collect();
        let parts = RequestParts {
            method: method.as_str(),
            path,
            query,
            headers: &headers,
        };
        let verified = sigv4::verify(&parts, &self.keys, &self.region, now_ms())?;
        *principal = Some(format!("s3:{}", verified.key.access_key_id));
        let target = parse_target(path)?;
        let writes = matches!(method, Method::Put | Method::Post | Method::Delete);
        if writes && verified.key.access < Access::Write {
            return Err(S3Error::new(
                Code::AccessDenied,
                "this access key may only read",
            ));
        }
        // See every change acknowledged before this request, wherever.
        self.naming.store().sync()?;
        let mut call = Call {
            naming: &self.naming,
            region: &self.region,
            query: verified.query,
            parts,
            key: verified.key,
            payload: Some(verified.payload),
        };
        if let Some(unsupported) = UNSUPPORTED_SUBRESOURCES.iter().find(|name| call.has(name)) {
            return Err(S3Error::new(
                Code::NotImplemented,
                format!("the ?{unsupported} sub-resource is not implemented"),
            ));
        }
        match (&target, &method) {
            (Target::Service, Method::Get) => Ok(bucket::list_buckets(&call)),
            (Target::Service, _) => Err(not_allowed()),
            (Target::Bucket(bucket), _) => {
                call.check_reaches(bucket)?;
                self.bucket_call(&mut call, request, bucket, &method)
            }
            (Target::Object { bucket, key }, _) => {
                call.check_reaches(bucket)?;
                bucket::require(&call, bucket)?;
                object::call(&mut call, request, bucket, key, &method)
            }
        }
    }

    fn bucket_call(
        &self,
        call: &mut Call<'_>,
        request: &mut Request,
        bucket: &str,
        method: &Method,
    ) -> Result<Reply, S3Error> {
        match method {
            Method::Put => bucket::create(call, request, bucket),
            Method::Head => bucket::head(call, bucket),
            Method::Delete => bucket::delete(call, bucket),
            Method::Get if call.has("location") => bucket::location(call, bucket),
            Method::Get if call.has("versioning") => bucket::versioning(call, bucket),
            Method::Get if call.has("uploads") => uploads::list_uploads(call, bucket),
            Method::Get => {
                bucket::require(call, bucket)?;
                list::objects(call, bucket)
            }
            Method::Post if call.has("delete") => object::delete_many(call, request, bucket),
            _ => Err(not_allowed()),
        }
    }
}

pub fn not_allowed() -> S3Error {
    S3Error::new(
        Code::MethodNotAllowed,
        "the specified method is not allowed against this resource",
    )
}

/// `/`, `/BUCKET[/]`, or `/BUCKET/KEY`, decoded.
fn parse_target(path: &str) -> Result<Target, S3Error> {
    let decoded = percent::decode(path)
        .map_err(|err| S3Error::new(Code::InvalidArgument, format!("path: {err}")))?;
    let rest = decoded.strip_prefix('/').unwrap_or(&decoded);
    if rest.is_empty() {
        return Ok(Target::Service);
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    bucket::check_name_reachable(bucket)?;
    Ok(match key {
        "" => Target::Bucket(bucket.to_owned()),
        key => Target::Object {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        },
    })
}

/// The Harbour file of key `key` in `bucket` (a key ending in `/` is a
/// directory and has none).
pub fn file_name(bucket: &str, key: &str) -> Result<FileName, S3Error> {
    FileName::parse(&format!("{bucket}/{key}")).map_err(|err| S3Error::bad_key(&err))
}

fn now_ms() -> u64 {
    common::cluster_auth::unix_ms()
}
