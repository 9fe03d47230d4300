//! API tokens on the public API (`API_TOKENS_FILE`): one per line,
//!
//! ```text
//! # comment
//! TOKEN read|write|admin [LABEL]
//! ```
//!
//! `read` may read files, list, stat, status and metrics; `write` also
//! create, overwrite and delete; `admin` also drain and register servers.
//! Clients send `Authorization: Bearer TOKEN`. Tokens are kept only as
//! their SHA-256, looked up by it, so neither the table nor the lookup's
//! timing holds a token's text; logs name a token by its label (or its line).
//! The file is read again on SIGHUP: a bad file keeps the tokens in force.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::limits::API_TOKEN_BYTES_MIN;

/// What a token may do; each permission includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    Read,
    Write,
    Admin,
}

impl Permission {
    fn parse(word: &str) -> Option<Permission> {
        match word {
            "read" => Some(Permission::Read),
            "write" => Some(Permission::Write),
            "admin" => Some(Permission::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        })
    }
}

#[derive(Debug)]
struct Grant {
    permission: Permission,
    label: String,
}

/// The tokens of one reading of the file.
pub struct TokenSet {
    by_digest: HashMap<[u8; 32], Grant>,
}

/// Why a request's token was refused (401 for the first two, 403 for the
/// last); the text is for the answer and the log and holds no token.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Unknown,
    Insufficient {
        label: String,
        has: Permission,
        needs: Permission,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Missing => {
                write!(f, "an API token is required (Authorization: Bearer TOKEN)")
            }
            TokenError::Unknown => write!(f, "unknown API token"),
            TokenError::Insufficient { label, has, needs } => {
                write!(
                    f,
                    "token {label:?} has {has} permission; this needs {needs}"
                )
            }
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenSet {
    /// Parses the file's text; an error names the line, never its token.
    pub fn parse(text: &str) -> Result<TokenSet, String> {
        let mut by_digest = HashMap::new();
        for (number, line) in text
            .lines()
            .enumerate()
            .map(|(k, line)| (k + 1, line.trim()))
        {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let token = words.next().expect("a line that is not empty has a word");
            let permission = words
                .next()
                .and_then(Permission::parse)
                .ok_or_else(|| format!("line {number}: expected TOKEN read|write|admin [LABEL]"))?;
            let label = words.collect::<Vec<_>>().join(" ");
            if token.len() < API_TOKEN_BYTES_MIN {
                return Err(format!(
                    "line {number}: a token needs at least {API_TOKEN_BYTES_MIN} characters"
                ));
            }
            let label = if label.is_empty() {
                format!("line {number}")
            } else {
                label
            };
            if by_digest
                .insert(digest(token), Grant { permission, label })
                .is_some()
            {
                return Err(format!("line {number}: a token listed twice"));
            }
        }
        Ok(TokenSet { by_digest })
    }

    fn authorize(&self, header: Option<&str>, needs: Permission) -> Result<&Grant, TokenError> {
        let token = header
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(TokenError::Missing)?;
        let grant = self
            .by_digest
            .get(&digest(token))
            .ok_or(TokenError::Unknown)?;
        if grant.permission < needs {
            return Err(TokenError::Insufficient {
                label: grant.label.clone(),
                has: grant.permission,
                needs,
            });
        }
        Ok(grant)
    }
}

/// The tokens in force, and the file they come from.
pub struct ApiTokens {
    path: String,
    current: RwLock<Arc<TokenSet>>,
}

impl ApiTokens {
    /// Reads the tokens file at `path` (owner-only, like every secret).
    pub fn load(path: &str) -> Result<ApiTokens, String> {
        let set = read(path)?;
        Ok(ApiTokens {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// How many tokens are in force.
    pub fn count(&self) -> usize {
        self.set().by_digest.len()
    }

    /// Reads the file again (SIGHUP); on an error the tokens in force stay.
    /// Returns how many tokens are in force now.
    pub fn reload(&self) -> Result<usize, String> {
        let set = Arc::new(read(&self.path)?);
        let count = set.by_digest.len();
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = set;
        Ok(count)
    }

    /// The label of the token in `header` if it has `needs`.
    pub fn authorize(&self, header: Option<&str>, needs: Permission) -> Result<String, TokenError> {
        self.set()
            .authorize(header, needs)
            .map(|grant| grant.label.clone())
    }

    fn set(&self) -> Arc<TokenSet> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

fn read(path: &str) -> Result<TokenSet, String> {
    let text = common::config::read_secret_file(path)?;
    TokenSet::parse(&text).map_err(|err| format!("{path}: {err}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const FILE: &str = "# ops tokens\n\
        reader-token-0123456789 read dashboards\n\
        \n\
        writer-token-0123456789 write ci bot\n\
        admin-token-01234567890 admin\n";

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn each_permission_includes_the_ones_before_it() {
        let set = TokenSet::parse(FILE).unwrap();
        let reader = bearer("reader-token-0123456789");
        let writer = bearer("writer-token-0123456789");
        let admin = bearer("admin-token-01234567890");
        assert_eq!(
            set.authorize(Some(&reader), Permission::Read)
                .unwrap()
                .label,
            "dashboards"
        );
        assert_eq!(
            set.authorize(Some(&reader), Permission::Write).unwrap_err(),
            TokenError::Insufficient {
                label: "dashboards".to_owned(),
                has: Permission::Read,
                needs: Permission::Write
            }
        );
        assert!(set.authorize(Some(&writer), Permission::Write).is_ok());
        assert!(set.authorize(Some(&writer), Permission::Admin).is_err());
        assert_eq!(
            set.authorize(Some(&admin), Permission::Admin)
                .unwrap()
                .label,
            "line 5"
        );
    }

    #[test]
    fn a_missing_or_unknown_token_is_refused() {
        let set = TokenSet::parse(FILE).unwrap();
        for header in [
            None,
            Some("Bearer "),
            Some("Basic abc"),
            Some("reader-token-0123456789"),
        ] {
            assert_eq!(
                set.authorize(header, Permission::Read).unwrap_err(),
                TokenError::Missing,
                "{header:?}"
            );
        }
        let prefix = bearer("reader-token-012345678");
        assert_eq!(
            set.authorize(Some(&prefix), Permission::Read).unwrap_err(),
            TokenError::Unknown
        );
    }

    #[test]
    fn a_bad_file_is_refused_by_line_without_its_token() {
        for (text, fragment) in [
            ("short read\n", "line 1: a token needs at least"),
            ("long-enough-token-xyz rule\n", "line 1: expected TOKEN"),
            ("long-enough-token-xyz\n", "line 1: expected TOKEN"),
            (
                "# c\nlong-enough-token-xyz read\nlong-enough-token-xyz admin\n",
                "line 3: a token listed twice",
            ),
        ] {
            let err = TokenSet::parse(text).err().unwrap();
            assert!(err.contains(fragment), "{text:?}: {err}");
            assert!(!err.contains("long-enough"), "{err}");
        }
    }
}
