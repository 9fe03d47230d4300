//! Percent-encoding of names in URL paths and queries (RFC 3986). Decoding
//! is strict: a malformed escape or a result that is not UTF-8 is an error,
//! never guessed at.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PercentError {
    MalformedEscape,
    NotUtf8,
}

/// Decodes `%XX` escapes. `+` stays `+`: in paths it is a literal.
pub fn decode(encoded: &str) -> Result<String, PercentError> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        match bytes[idx] {
            b'%' => {
                let high = bytes.get(idx + 1).and_then(|b| hex_value(*b));
                let low = bytes.get(idx + 2).and_then(|b| hex_value(*b));
                match (high, low) {
                    (Some(high), Some(low)) => decoded.push(high << 4 | low),
                    _ => return Err(PercentError::MalformedEscape),
                }
                idx += 3;
            }
            byte => {
                decoded.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| PercentError::NotUtf8)
}

/// Encodes everything but RFC 3986's unreserved characters; `/` is kept when
/// `keep_slash`, so names with folders stay readable in paths.
pub fn encode(text: &str, keep_slash: bool) -> String {
    let mut encoded = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for PercentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PercentError::MalformedEscape => write!(f, "malformed percent-escape in the URL"),
            PercentError::NotUtf8 => write!(f, "the URL does not decode to UTF-8"),
        }
    }
}

impl std::error::Error for PercentError {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{PercentError, decode, encode};

    #[test]
    fn round_trips_every_byte() {
        let text = "a b/ü%/+?#&=文\u{1}";
        assert_eq!(decode(&encode(text, true)).unwrap(), text);
        assert_eq!(decode(&encode(text, false)).unwrap(), text);
        assert_eq!(encode("a b/c", true), "a%20b/c");
        assert_eq!(encode("a b/c", false), "a%20b%2Fc");
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode("a%2"), Err(PercentError::MalformedEscape));
        assert_eq!(decode("a%zz"), Err(PercentError::MalformedEscape));
        assert_eq!(decode("%ff"), Err(PercentError::NotUtf8));
        assert_eq!(decode("a+b%2Fc").unwrap(), "a+b/c");
    }
}
