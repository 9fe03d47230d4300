//! File names: the SPEC's rules, checked once at the boundary. Past `api.rs`
//! a name is a `FileName`, so every name the system holds is valid.

use std::fmt;

use crate::limits::FILE_NAME_BYTES_MAX;

/// A valid file name: UTF-8, 1 to `FILE_NAME_BYTES_MAX` bytes, no control
/// characters, no leading `/`, and no empty, `.` or `..` segment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { len_bytes: usize },
    ControlCharacter,
    LeadingSlash,
    EmptySegment,
    DotSegment,
}

impl FileName {
    pub fn parse(name: &str) -> Result<FileName, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > FILE_NAME_BYTES_MAX {
            return Err(NameError::TooLong {
                len_bytes: name.len(),
            });
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        if name.starts_with('/') {
            return Err(NameError::LeadingSlash);
        }
        for segment in name.split('/') {
            match segment {
                "" => return Err(NameError::EmptySegment),
                "." | ".." => return Err(NameError::DotSegment),
                _ => {}
            }
        }
        Ok(FileName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `FileName` be searched with a `&str` prefix; sound
/// because the derived order and hash are those of the inner `String`.
impl std::borrow::Borrow<str> for FileName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "a file name cannot be empty"),
            NameError::TooLong { len_bytes } => write!(
                f,
                "a file name is at most {FILE_NAME_BYTES_MAX} bytes, this one has {len_bytes}"
            ),
            NameError::ControlCharacter => {
                write!(f, "a file name cannot contain control characters")
            }
            NameError::LeadingSlash => write!(f, "a file name cannot start with '/'"),
            NameError::EmptySegment => write!(
                f,
                "a file name cannot have an empty segment ('//' or a trailing '/')"
            ),
            NameError::DotSegment => write!(f, "a file name cannot have a '.' or '..' segment"),
        }
    }
}

impl std::error::Error for NameError {}

#[cfg(test)]
mod tests;
