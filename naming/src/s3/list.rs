//! ListObjectsV2 and ListObjects (V1): the bucket's keys in order, from a
//! start, with S3's prefix, delimiter (any string) and page size, walked
//! one range seek per key or common prefix (`Metadata::next_entry`), so a
//! page of 1,000 costs 1,000 seeks whatever the bucket holds. A common
//! prefix is jumped over whole. The continuation token is where the next
//! page starts, as an opaque base64 string.

use std::ops::Bound;

use common::percent;
use common::server::Reply;

use crate::metadata::Entry;
use crate::s3::Call;
use crate::s3::bucket::xml_reply;
use crate::s3::encoding::{base64, unbase64};
use crate::s3::error::{Code, S3Error};
use crate::s3::object::{EMPTY_ETAG, etag};
use crate::s3::xml::Doc;

/// The most keys a page holds (S3's `max-keys` limit and default).
pub const LIST_KEYS_MAX: usize = 1000;

/// Where a page starts: a key itself, or just past it.
#[derive(Debug, PartialEq, Eq)]
struct Start {
    key: String,
    inclusive: bool,
}

impl Start {
    fn bound(&self) -> Bound<&str> {
        match self.inclusive {
            true => Bound::Included(&self.key),
            false => Bound::Excluded(&self.key),
        }
    }

    fn token(&self) -> String {
        let flag = if self.inclusive { 'I' } else { 'E' };
        base64(format!("{flag}{}", self.key).as_bytes())
    }

    fn of_token(token: &str) -> Result<Start, S3Error> {
        let bad = || S3Error::new(Code::InvalidArgument, "the continuation token is not valid");
        let text = String::from_utf8(unbase64(token).ok_or_else(bad)?).map_err(|_| bad())?;
        let inclusive = match text.chars().next() {
            Some('I') => true,
            Some('E') => false,
            _ => return Err(bad()),
        };
        Ok(Start {
            key: text[1..].to_owned(),
            inclusive,
        })
    }
}

/// One listed object.
struct Listed {
    key: String,
    size: u64,
    mtime_ms: u64,
    etag: String,
}

struct Page {
    objects: Vec<Listed>,
    prefixes: Vec<String>,
    /// Where the next page starts, when there is one.
    next: Option<Start>,
}

/// GET on a bucket: V2 with `list-type=2`, else V1.
pub fn objects(call: &Call<'_>, bucket: &str) -> Result<Reply, S3Error> {
    let v2 = match call.param("list-type") {
        None => false,
        Some("2") => true,
        Some(other) => {
            return Err(S3Error::new(
                Code::InvalidArgument,
                format!("list-type {other:?} is not 2"),
            ));
        }
    };
    let prefix = call.param("prefix").unwrap_or("");
    let delimiter = call.param("delimiter").unwrap_or("");
    let url_encoded = match call.param("encoding-type") {
        None => false,
        Some("url") => true,
        Some(other) => {
            return Err(S3Error::new(
                Code::InvalidArgument,
                format!("encoding-type {other:?} is not url"),
            ));
        }
    };
    let max_keys = match call.param("max-keys") {
        None => LIST_KEYS_MAX,
        Some(raw) => raw
            .parse::<usize>()
            .map_err(|_| S3Error::new(Code::InvalidArgument, "max-keys is not a whole number"))?
            .min(LIST_KEYS_MAX),
    };
    let bucket_dir = format!("{bucket}/");
    let after = match v2 {
        true => call.param("start-after"),
        false => call.param("marker"),
    };
    let token = call.param("continuation-token").filter(|_| v2);
    let start = match (token, after) {
        (Some(token), _) => Start::of_token(token)?,
        // A V1 marker that is a common prefix (the NextMarker of a page
        // that ended on one): past everything under it.
        (None, Some(after)) if !v2 && !delimiter.is_empty() && after.ends_with(delimiter) => {
            match past_prefix(&format!("{bucket_dir}{after}")) {
                Some(past) => Start {
                    key: past,
                    inclusive: true,
                },
                None => Start {
                    key: format!("{bucket_dir}{after}"),
                    inclusive: false,
                },
            }
        }
        (None, Some(after)) if !after.is_empty() => Start {
            key: format!("{bucket_dir}{after}"),
            inclusive: false,
        },
        _ => Start {
            key: format!("{bucket_dir}{prefix}"),
            inclusive: true,
        },
    };
    let page = walk(call, &bucket_dir, prefix, delimiter, start, max_keys);
    let code = |text: &str| match url_encoded {
        true => percent::encode(text, true),
        false => text.to_owned(),
    };
    let root = "ListBucketResult";
    let mut doc = Doc::new(root);
    doc.element("Name", bucket).element("Prefix", &code(prefix));
    if !delimiter.is_empty() {
        doc.element("Delimiter", &code(delimiter));
    }
    doc.element("MaxKeys", &max_keys.to_string());
    if url_encoded {
        doc.element("EncodingType", "url");
    }
    doc.element("IsTruncated", &page.next.is_some().to_string());
    if v2 {
        let count = page.objects.len() + page.prefixes.len();
        doc.element("KeyCount", &count.to_string());
        if let Some(token) = token {
            doc.element("ContinuationToken", token);
        }
        if let Some(next) = &page.next {
            doc.element("NextContinuationToken", &next.token());
        }
        if let Some(after) = call.param("start-after") {
            doc.element("StartAfter", &code(after));
        }
    } else {
        doc.element("Marker", &code(after.unwrap_or("")));
        let last = page
            .objects
            .last()
            .map(|object| object.key.as_str())
            .into_iter()
            .chain(page.prefixes.last().map(String::as_str))
            .max();
        if let (Some(_), Some(last)) = (&page.next, last) {
            doc.element("NextMarker", &code(last));
        }
    }
    let owner = !v2 || call.param("fetch-owner") == Some("true");
    for object in &page.objects {
        doc.open("Contents")
            .element("Key", &code(&object.key))
            .element("LastModified", &common::time::from_unix_ms(object.mtime_ms))
            .element("ETag", &object.etag)
            .element("Size", &object.size.to_string());
        if owner {
            doc.open("Owner")
                .element("ID", "harbour")
                .element("DisplayName", "harbour")
                .close("Owner");
        }
        doc.element("StorageClass", "STANDARD").close("Contents");
    }
    for prefix in &page.prefixes {
        doc.open("CommonPrefixes")
            .element("Prefix", &code(prefix))
            .close("CommonPrefixes");
    }
    Ok(xml_reply(doc.finish(root)))
}

/// Up to `max_keys` objects and common prefixes of the bucket whose
/// folder is `bucket_dir`, from `start`.
fn walk(
    call: &Call<'_>,
    bucket_dir: &str,
    prefix: &str,
    delimiter: &str,
    mut start: Start,
    max_keys: usize,
) -> Page {
    let full_prefix = format!("{bucket_dir}{prefix}");
    if start.key < full_prefix {
        // A marker before the prefix: every listed key is past it anyway.
        start = Start {
            key: full_prefix.clone(),
            inclusive: true,
        };
    }
    let metadata = call.naming.metadata();
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        next: None,
    };
    let mut taken = 0;
    loop {
        let Some(entry) = metadata.next_entry(&full_prefix, start.bound()) else {
            return page;
        };
        let full_key = entry.key();
        if full_key == bucket_dir {
            // The bucket's own directory is not one of its keys.
            start = Start {
                key: full_key.to_owned(),
                inclusive: false,
            };
            continue;
        }
        if taken == max_keys {
            page.next = Some(start);
            return page;
        }
        taken += 1;
        let key = &full_key[bucket_dir.len()..];
        let rolled_up = match delimiter {
            "" => None,
            delimiter => key[prefix.len()..]
                .find(delimiter)
                .map(|at| &key[..prefix.len() + at + delimiter.len()]),
        };
        if let Some(common) = rolled_up {
            page.prefixes.push(common.to_owned());
            match past_prefix(&format!("{bucket_dir}{common}")) {
                Some(past) => {
                    start = Start {
                        key: past,
                        inclusive: true,
                    }
                }
                None => return page,
            }
            continue;
        }
        page.objects.push(match entry {
            Entry::File(_, version) => Listed {
                key: key.to_owned(),
                size: version.size_bytes,
                mtime_ms: version.mtime_ms,
                etag: etag(version),
            },
            Entry::Dir(_) => Listed {
                key: key.to_owned(),
                size: 0,
                mtime_ms: 0,
                etag: EMPTY_ETAG.to_owned(),
            },
        });
        start = Start {
            key: full_key.to_owned(),
            inclusive: false,
        };
    }
}

/// The least string above every string that starts with `prefix`: its
/// last character moved up by one (dropped when it is the last there is).
fn past_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            last => char::from_u32(u32::from(last) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{Start, past_prefix};

    #[test]
    fn past_a_prefix_is_above_everything_under_it() {
        assert_eq!(past_prefix("a/").as_deref(), Some("a0"));
        assert_eq!(past_prefix("a-x").as_deref(), Some("a-y"));
        assert_eq!(past_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(past_prefix("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(past_prefix(""), None);
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        for start in [
            Start {
                key: "b/ü k".to_owned(),
                inclusive: true,
            },
            Start {
                key: "b/x".to_owned(),
                inclusive: false,
            },
        ] {
            assert_eq!(Start::of_token(&start.token()).ok(), Some(start));
        }
        assert!(Start::of_token("!!").is_err());
        assert!(Start::of_token("WGFiYw==").is_err());
    }
}
