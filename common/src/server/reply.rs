//! What a handler answers (`Reply`: a status, headers, and a body of
//! bytes, a stream or prefetched pieces) and how it is sent.

use std::borrow::Cow;
use std::io::{self, Read};

use serde::Serialize;
use tiny_http::{Header, Request, Response, StatusCode};

use super::prefetch::{self, Pieces};
use crate::api::ErrorBody;

/// What a handler answers.
pub struct Reply {
    pub status: u16,
    headers: Vec<(Cow<'static, str>, String)>,
    body: Body,
    /// Who asked (an API token's label), for the request's log line.
    pub(super) principal: Option<String>,
}

enum Body {
    Bytes(Vec<u8>),
    /// A streamed body; `len: None` is sent chunked.
    Stream {
        reader: Box<dyn Read + Send>,
        len: Option<u64>,
    },
    /// A streamed body of `len` bytes whose next piece is produced while
    /// the current one is sent (see `prefetch`).
    Prefetched {
        pieces: Box<dyn Pieces>,
        len: u64,
    },
}

impl Reply {
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            principal: None,
        }
    }

    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        let bytes = serde_json::to_vec(value).expect("our reply types always serialise");
        Reply::empty(status)
            .with_header("Content-Type", "application/json")
            .with_bytes(bytes)
    }

    pub fn error(status: u16, message: String) -> Reply {
        assert!(status >= 400);
        Reply::json(status, &ErrorBody { error: message })
    }

    pub fn bytes(status: u16, content_type: &'static str, bytes: Vec<u8>) -> Reply {
        Reply::empty(status)
            .with_header("Content-Type", content_type)
            .with_bytes(bytes)
    }

    /// A body streamed from `reader`, of exactly `len` bytes when known.
    pub fn stream(
        status: u16,
        content_type: &'static str,
        reader: Box<dyn Read + Send>,
        len: Option<u64>,
    ) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.to_owned())],
            body: Body::Stream { reader, len },
            principal: None,
        }
    }

    /// A body of exactly `len` bytes made of `pieces`, the next produced
    /// while the current one is sent.
    pub fn prefetched(
        status: u16,
        content_type: &'static str,
        pieces: Box<dyn Pieces>,
        len: u64,
    ) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.to_owned())],
            body: Body::Prefetched { pieces, len },
            principal: None,
        }
    }

    /// Adds a header; `name` is usually a constant, or made at run time
    /// (S3's `x-amz-meta-*`).
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the Content-Type a constructor set.
    pub fn with_content_type(mut self, value: impl Into<String>) -> Reply {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("Content-Type"));
        self.with_header("Content-Type", value)
    }

    fn with_bytes(mut self, bytes: Vec<u8>) -> Reply {
        self.body = Body::Bytes(bytes);
        self
    }

    /// Names who asked (an API token's label) in the request's log line.
    pub fn with_principal(mut self, label: Option<&str>) -> Reply {
        self.principal = label.map(str::to_owned);
        self
    }

    /// The body's length, when known before it is sent.
    pub(super) fn body_len(&self) -> Option<u64> {
        match &self.body {
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::Stream { len, .. } => *len,
            Body::Prefetched { len, .. } => Some(*len),
        }
    }
}

/// Answers a request the workers have no room for. Reads no body: the
/// `Connection: close` header makes the patched tiny_http skip its drain.
pub(super) fn reject_busy(request: Request) {
    let reply = Reply::error(503, "server busy, retry shortly".to_owned())
        .with_header("Retry-After", "1")
        .with_header("Connection", "close");
    respond(request, reply);
}

pub(super) fn respond(request: Request, reply: Reply) {
    let mut headers = Vec::with_capacity(reply.headers.len());
    for (name, value) in &reply.headers {
        match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => headers.push(header),
            Err(()) => log::warn!("dropping a malformed response header {name}"),
        }
    }
    let status = StatusCode(reply.status);
    // A client that went away mid-answer is its own business; nothing to do.
    let _ = match reply.body {
        Body::Bytes(bytes) => {
            let len = bytes.len();
            // A known length always goes as Content-Length (see below).
            let response = Response::new(status, headers, io::Cursor::new(bytes), Some(len), None)
                .with_chunked_threshold(usize::MAX);
            request.respond(response)
        }
        Body::Stream {
            reader,
            len: Some(len),
        } => {
            let len = usize::try_from(len).expect("a 64-bit target");
            // tiny_http switches to chunked encoding past 32 KiB by default;
            // a known length is always sent as Content-Length (HEAD too).
            let response = Response::new(status, headers, reader, Some(len), None)
                .with_chunked_threshold(usize::MAX);
            request.respond(response)
        }
        Body::Stream { reader, len: None } => {
            request.respond(Response::new(status, headers, reader, None, None))
        }
        Body::Prefetched { pieces, len } => {
            let len = usize::try_from(len).expect("a 64-bit target");
            prefetch::with_prefetch(pieces, |reader| {
                let response = Response::new(status, headers, reader, Some(len), None)
                    .with_chunked_threshold(usize::MAX);
                request.respond(response)
            })
        }
    };
}
