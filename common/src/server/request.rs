//! What handlers read of a request: its body through a cap, its headers,
//! its path and query.

use std::fmt;
use std::io::{self, Read};

use tiny_http::Request;

#[derive(Debug)]
pub enum BodyError {
    TooLarge { limit_bytes: u64 },
    Io(io::Error),
}

/// Reads a whole body of at most `limit_bytes`; one byte more is an error,
/// so a lying or huge body costs at most `limit_bytes + 1` of memory.
pub fn read_body_capped(request: &mut Request, limit_bytes: u64) -> Result<Vec<u8>, BodyError> {
    if request
        .body_length()
        .is_some_and(|len| len as u64 > limit_bytes)
    {
        return Err(BodyError::TooLarge { limit_bytes });
    }
    // Sized by the announced length (bounded above), so a batch is read
    // in a few large reads, not through doublings of a growing buffer.
    let announced = request.body_length().unwrap_or(0) as u64;
    let mut body = Vec::with_capacity(usize::try_from(announced.min(limit_bytes) + 1).unwrap_or(0));
    request
        .as_reader()
        .take(limit_bytes + 1)
        .read_to_end(&mut body)
        .map_err(BodyError::Io)?;
    if body.len() as u64 > limit_bytes {
        return Err(BodyError::TooLarge { limit_bytes });
    }
    Ok(body)
}

/// The value of the request's header `name` (the first, if repeated).
pub fn header<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.equiv(name))
        .map(|header| header.value.as_str())
}

/// Whether the request body is sent with `Transfer-Encoding: chunked`.
pub fn is_chunked(request: &Request) -> bool {
    request.headers().iter().any(|header| {
        header.field.equiv("Transfer-Encoding")
            && header
                .value
                .as_str()
                .to_ascii_lowercase()
                .contains("chunked")
    })
}

/// The path of the request URL, without its query.
pub fn url_path(request: &Request) -> &str {
    request.url().split('?').next().unwrap_or("")
}

/// The raw (still percent-encoded) value of query parameter `key`.
pub fn query_param<'a>(request: &'a Request, key: &str) -> Option<&'a str> {
    let (_, query) = request.url().split_once('?')?;
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if pair == key => Some(""),
            _ => None,
        })
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit_bytes } => {
                write!(f, "request body larger than {limit_bytes} bytes")
            }
            BodyError::Io(err) => write!(f, "reading the request body failed: {err}"),
        }
    }
}

impl std::error::Error for BodyError {}
