//! Buckets: the top-level directories. Listing them walks the namespace's
//! top level (explicit directories and the implicit ones files make),
//! jumping over each one's names; creating one makes the directory `B/`
//! explicit; deleting one removes it when nothing is under it.

use std::ops::Bound;

use common::name::FileName;
use common::server::{Reply, STATUS_NO_CONTENT, STATUS_OK};
use tiny_http::Request;

use crate::metadata::change::Refusal;
use crate::s3::body::read_document;
use crate::s3::error::{Code, S3Error};
use crate::s3::xml::{self, Doc, Item};
use crate::s3::{Call, XML_BODY_BYTES_MAX};

/// When a bucket was created is not kept (a directory has no times): the
/// listing says the epoch.
const CREATION_DATE_UNKNOWN: &str = "1970-01-01T00:00:00.000Z";

/// A bucket name a request may use: one valid Harbour name segment, so
/// directories made through the native API with other names stay
/// reachable (S3's stricter rules apply to new buckets: `check_new_name`).
pub fn check_name_reachable(name: &str) -> Result<(), S3Error> {
    match FileName::parse(name) {
        Ok(_) if !name.contains('/') => Ok(()),
        _ => Err(S3Error::new(
            Code::InvalidBucketName,
            format!("{name:?} is not a bucket name"),
        )),
    }
}

/// S3's rules for a new bucket: 3 to 63 lower-case letters, digits, dots
/// and hyphens, starting and ending with a letter or digit, not an IP.
fn check_new_name(name: &str) -> Result<(), S3Error> {
    let bytes = name.as_bytes();
    let alnum = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    let good = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|byte| alnum(byte) || matches!(byte, b'.' | b'-'))
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    match good {
        true => Ok(()),
        false => Err(S3Error::new(
            Code::InvalidBucketName,
            format!(
                "{name:?}: a bucket name is 3 to 63 lower-case letters, digits, dots and hyphens"
            ),
        )),
    }
}

pub fn exists(call: &Call<'_>, bucket: &str) -> bool {
    call.naming.metadata().dir_exists(&format!("{bucket}/"))
}

/// `NoSuchBucket` unless `bucket` exists.
pub fn require(call: &Call<'_>, bucket: &str) -> Result<(), S3Error> {
    match exists(call, bucket) {
        true => Ok(()),
        false => Err(S3Error::new(
            Code::NoSuchBucket,
            format!("the bucket {bucket} does not exist"),
        )),
    }
}

/// ListBuckets: the top-level directories this key reaches.
pub fn list_buckets(call: &Call<'_>) -> Reply {
    let mut names = Vec::new();
    {
        let metadata = call.naming.metadata();
        let mut from = String::new();
        let mut inclusive = true;
        loop {
            let bound = match inclusive {
                true => Bound::Included(from.as_str()),
                false => Bound::Excluded(from.as_str()),
            };
            let Some(entry) = metadata.next_entry("", bound) else {
                break;
            };
            let key = entry.key();
            match key.split_once('/') {
                Some((top, _)) => {
                    names.push(top.to_owned());
                    // Past every name under `top/`: `/` is followed by `0`.
                    from = format!("{top}0");
                    inclusive = true;
                }
                // A file at the top level is in no bucket.
                None => {
                    from = key.to_owned();
                    inclusive = false;
                }
            }
        }
    }
    let mut doc = Doc::new("ListAllMyBucketsResult");
    doc.open("Owner")
        .element("ID", "harbour")
        .element("DisplayName", "harbour")
        .close("Owner")
        .open("Buckets");
    for name in names.iter().filter(|name| call.key.reaches(Some(name))) {
        doc.open("Bucket")
            .element("Name", name)
            .element("CreationDate", CREATION_DATE_UNKNOWN)
            .close("Bucket");
    }
    doc.close("Buckets");
    xml_reply(doc.finish("ListAllMyBucketsResult"))
}

/// CreateBucket: the directory `B/`, explicit.
pub fn create(call: &mut Call<'_>, request: &mut Request, bucket: &str) -> Result<Reply, S3Error> {
    check_new_name(bucket)?;
    let document = read_document(call, request, XML_BODY_BYTES_MAX)?;
    if !document.iter().all(u8::is_ascii_whitespace) {
        let asked = xml::parse(&document)?
            .into_iter()
            .find_map(|item| match item {
                Item::Text { path, text } if path.ends_with("/LocationConstraint") => Some(text),
                _ => None,
            });
        if let Some(asked) = asked.filter(|asked| !asked.is_empty() && asked != call.region) {
            return Err(S3Error::new(
                Code::InvalidArgument,
                format!("this server is region {}, not {asked}", call.region),
            ));
        }
    }
    if exists(call, bucket) {
        return Err(S3Error::new(
            Code::BucketAlreadyOwnedByYou,
            format!("the bucket {bucket} exists already and is yours"),
        ));
    }
    match call.naming.make_dir(&format!("{bucket}/")) {
        Ok(()) => Ok(Reply::empty(STATUS_OK).with_header("Location", format!("/{bucket}"))),
        // Raced with another create of it.
        Err(Refusal::NameTaken) if exists(call, bucket) => Err(S3Error::new(
            Code::BucketAlreadyOwnedByYou,
            format!("the bucket {bucket} exists already and is yours"),
        )),
        Err(Refusal::NameTaken) => Err(S3Error::new(
            Code::InvalidBucketName,
            format!("a Harbour file is named {bucket}"),
        )),
        Err(other) => Err(other.into()),
    }
}

/// HeadBucket.
pub fn head(call: &Call<'_>, bucket: &str) -> Result<Reply, S3Error> {
    require(call, bucket)?;
    Ok(Reply::empty(STATUS_OK).with_header("x-amz-bucket-region", call.region.to_owned()))
}

/// DeleteBucket: only an empty one (folder markers count as objects).
pub fn delete(call: &Call<'_>, bucket: &str) -> Result<Reply, S3Error> {
    require(call, bucket)?;
    match call.naming.remove_dir(&format!("{bucket}/"), false) {
        Ok(()) => Ok(Reply::empty(STATUS_NO_CONTENT)),
        Err(Refusal::NotEmpty) | Err(Refusal::NoSuchFile) => Err(S3Error::new(
            Code::BucketNotEmpty,
            format!("the bucket {bucket} is not empty"),
        )),
        Err(other) => Err(other.into()),
    }
}

/// GetBucketLocation: empty for us-east-1, as S3 answers.
pub fn location(call: &Call<'_>, bucket: &str) -> Result<Reply, S3Error> {
    require(call, bucket)?;
    let region = match call.region {
        "us-east-1" => "",
        region => region,
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{region}</LocationConstraint>"
    );
    Ok(xml_reply(body.into_bytes()))
}

/// GetBucketVersioning: never enabled.
pub fn versioning(call: &Call<'_>, bucket: &str) -> Result<Reply, S3Error> {
    require(call, bucket)?;
    Ok(xml_reply(
        Doc::new("VersioningConfiguration").finish("VersioningConfiguration"),
    ))
}

pub fn xml_reply(bytes: Vec<u8>) -> Reply {
    Reply::bytes(STATUS_OK, "application/xml", bytes)
}
