//! The S3 access keys: one from `S3_ACCESS_KEY_ID` and
//! `S3_SECRET_ACCESS_KEY` with every right, or several from
//! `S3_KEYS_FILE`, one per line:
//!
//! ```text
//! # comment
//! ACCESS_KEY_ID SECRET_ACCESS_KEY read|write [BUCKET,BUCKET...]
//! ```
//!
//! `read` may list and read; `write` also create, overwrite and delete
//! objects and buckets. With buckets named, the key reaches only those
//! (and lists only those). A secret is never printed: `Debug` leaves it out.

use std::fmt;

/// Shortest secret accepted: AWS's are 40 characters.
pub const SECRET_BYTES_MIN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

#[derive(Clone)]
pub struct S3Key {
    pub access_key_id: String,
    secret: String,
    pub access: Access,
    /// The buckets this key reaches; `None`: all of them.
    pub buckets: Option<Vec<String>>,
}

impl S3Key {
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether the key may reach `bucket` (`None`: the bucket listing).
    pub fn reaches(&self, bucket: Option<&str>) -> bool {
        match (&self.buckets, bucket) {
            (None, _) | (Some(_), None) => true,
            (Some(buckets), Some(bucket)) => buckets.iter().any(|allowed| allowed == bucket),
        }
    }
}

impl fmt::Debug for S3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Key")
            .field("access_key_id", &self.access_key_id)
            .field("access", &self.access)
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct S3Keys {
    keys: Vec<S3Key>,
}

impl S3Keys {
    /// The one key of `S3_ACCESS_KEY_ID` / `S3_SECRET_ACCESS_KEY`.
    pub fn single(access_key_id: &str, secret: &str) -> Result<S3Keys, String> {
        check_key(access_key_id, secret)?;
        Ok(S3Keys {
            keys: vec![S3Key {
                access_key_id: access_key_id.to_owned(),
                secret: secret.to_owned(),
                access: Access::Write,
                buckets: None,
            }],
        })
    }

    /// The keys of an `S3_KEYS_FILE`'s text; the error names the line.
    pub fn parse(text: &str) -> Result<S3Keys, String> {
        let mut keys: Vec<S3Key> = Vec::new();
        for (at, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |what: String| format!("line {}: {what}", at + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            let (id, secret, access, buckets) = match words[..] {
                [id, secret, access] => (id, secret, access, None),
                [id, secret, access, buckets] => (id, secret, access, Some(buckets)),
                _ => {
                    return Err(fail(
                        "expected `ACCESS_KEY_ID SECRET read|write [BUCKET,...]`".to_owned(),
                    ));
                }
            };
            check_key(id, secret).map_err(fail)?;
            let access = match access {
                "read" => Access::Read,
                "write" => Access::Write,
                other => return Err(fail(format!("{other:?} is neither read nor write"))),
            };
            if keys.iter().any(|key| key.access_key_id == id) {
                return Err(fail(format!("access key {id} is listed twice")));
            }
            let buckets = buckets.map(|list| {
                list.split(',')
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
            keys.push(S3Key {
                access_key_id: id.to_owned(),
                secret: secret.to_owned(),
                access,
                buckets,
            });
        }
        if keys.is_empty() {
            return Err("no keys in the file".to_owned());
        }
        Ok(S3Keys { keys })
    }

    pub fn find(&self, access_key_id: &str) -> Option<&S3Key> {
        self.keys
            .iter()
            .find(|key| key.access_key_id == access_key_id)
    }

    pub fn count(&self) -> usize {
        self.keys.len()
    }
}

fn check_key(access_key_id: &str, secret: &str) -> Result<(), String> {
    let printable = |text: &str| text.bytes().all(|byte| byte.is_ascii_graphic());
    if access_key_id.is_empty() || !printable(access_key_id) || access_key_id.contains('/') {
        return Err("an access key id is printable ASCII without / or spaces".to_owned());
    }
    if secret.len() < SECRET_BYTES_MIN || !printable(secret) {
        return Err(format!(
            "a secret access key is printable ASCII of {SECRET_BYTES_MIN} characters at least"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_keys_file_gives_rights_and_buckets() {
        let keys = S3Keys::parse(
            "# team keys\nreader 0123456789abcdef0123 read\n\nwriter fedcba9876543210fedc write logs,backups\n",
        )
        .unwrap();
        assert_eq!(keys.count(), 2);
        let reader = keys.find("reader").unwrap();
        assert_eq!(
            (reader.access, reader.reaches(Some("any"))),
            (Access::Read, true)
        );
        let writer = keys.find("writer").unwrap();
        assert!(writer.reaches(Some("logs")) && !writer.reaches(Some("other")));
        assert!(writer.reaches(None));
        assert!(keys.find("nobody").is_none());
        assert!(!format!("{writer:?}").contains("fedcba"));
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, needle) in [
            ("a short read", "line 1"),
            ("a 0123456789abcdef0123 admin", "neither"),
            (
                "a 0123456789abcdef0123 read\na 0123456789abcdef0123 read",
                "line 2: access key a is listed twice",
            ),
            ("", "no keys"),
            ("a/b 0123456789abcdef0123 read", "access key id"),
        ] {
            let err = S3Keys::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
