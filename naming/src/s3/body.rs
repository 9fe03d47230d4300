//! An object's body as it streams into a create: decoded from aws-chunked
//! when so sent, and hashed on the way: MD5 always (the ETag), SHA-256 when
//! the signature covers it, the `x-amz-checksum-*` a client sent in a
//! header or announced for the trailer. `seal` compares them all once the
//! last byte is stored and before the commit: a body that fails any check
//! is refused whole.

use std::io::{self, BufReader, Read};

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::s3::checksum::Checksum;
use crate::s3::chunked::AwsChunked;
use crate::s3::encoding::{base64, hex, unbase64};
use crate::s3::error::{Code, S3Error};
use crate::s3::sigv4::{Payload, RequestParts};

/// Read buffer under an aws-chunked body, which is parsed line by line.
const CHUNKED_BUFFER_BYTES: usize = 64 * 1024;

enum Source<R> {
    Plain(R),
    Chunked(Box<AwsChunked<BufReader<R>>>),
}

/// A checksum the request announces: its header's name, the running
/// checksum, and its value when sent as a header (else it comes in the
/// trailer).
struct Announced {
    name: String,
    running: Checksum,
    sent: Option<Vec<u8>>,
}

pub struct ObjectBody<R> {
    source: Source<R>,
    md5: Md5,
    /// The SHA-256 the signature claims, and the running one.
    sha256: Option<([u8; 32], Sha256)>,
    /// `Content-MD5`, when sent.
    content_md5: Option<[u8; 16]>,
    checksum: Option<Announced>,
    /// Why the body was refused, once it was.
    failure: Option<S3Error>,
}

impl<R: Read> ObjectBody<R> {
    pub fn new(
        inner: R,
        payload: Payload,
        request: &RequestParts<'_>,
    ) -> Result<ObjectBody<R>, S3Error> {
        let content_md5 = match request.header("content-md5") {
            None => None,
            Some(text) => Some(
                unbase64(text.trim())
                    .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
                    .ok_or_else(|| {
                        S3Error::new(Code::InvalidDigest, "Content-MD5 is not a base64 MD5")
                    })?,
            ),
        };
        let checksum = checksum_of(request)?;
        let chunked_encoding = request
            .header("content-encoding")
            .is_some_and(|value| value.contains("aws-chunked"));
        let (source, sha256) = match payload {
            Payload::Chunked { signer, trailer } => (
                Source::Chunked(Box::new(AwsChunked::new(
                    BufReader::with_capacity(CHUNKED_BUFFER_BYTES, inner),
                    signer,
                    trailer,
                ))),
                None,
            ),
            _ if chunked_encoding => {
                return Err(S3Error::new(
                    Code::InvalidRequest,
                    "an aws-chunked body needs a STREAMING-* x-amz-content-sha256",
                ));
            }
            Payload::Sha256(claimed) => (Source::Plain(inner), Some((claimed, Sha256::new()))),
            Payload::Unsigned => (Source::Plain(inner), None),
        };
        if checksum
            .as_ref()
            .is_some_and(|announced| announced.sent.is_none())
            && !matches!(source, Source::Chunked(_))
        {
            return Err(S3Error::new(
                Code::InvalidRequest,
                "x-amz-trailer needs an aws-chunked body",
            ));
        }
        Ok(ObjectBody {
            source,
            md5: Md5::new(),
            sha256,
            content_md5,
            checksum,
            failure: None,
        })
    }

    /// A body with nothing to prove (a copy's source): only its MD5.
    pub fn plain(inner: R) -> ObjectBody<R> {
        ObjectBody {
            source: Source::Plain(inner),
            md5: Md5::new(),
            sha256: None,
            content_md5: None,
            checksum: None,
            failure: None,
        }
    }

    /// Checks every digest once the whole body is read; the object's MD5.
    pub fn seal(&mut self) -> Result<[u8; 16], S3Error> {
        if let Source::Chunked(chunked) = &mut self.source {
            // The create stops reading at the announced length: the last
            // chunk and the trailer (its checksum) are still to come.
            let mut rest = [0u8; 1];
            match chunked.read(&mut rest) {
                Ok(0) => {}
                Ok(_) => {
                    return Err(S3Error::new(
                        Code::IncompleteBody,
                        "the body is longer than its x-amz-decoded-content-length",
                    ));
                }
                Err(err) => {
                    return Err(chunked
                        .failure
                        .take()
                        .unwrap_or_else(|| S3Error::new(Code::IncompleteBody, err.to_string())));
                }
            }
        }
        let md5: [u8; 16] = std::mem::take(&mut self.md5).finalize().into();
        if let Some((claimed, running)) = self.sha256.take()
            && <[u8; 32]>::from(running.finalize()) != claimed
        {
            return Err(S3Error::new(
                Code::XAmzContentSHA256Mismatch,
                "the body's SHA-256 is not the x-amz-content-sha256 it was signed with",
            ));
        }
        if self.content_md5.is_some_and(|claimed| claimed != md5) {
            return Err(S3Error::new(
                Code::BadDigest,
                "the Content-MD5 you specified did not match what we received",
            ));
        }
        if let Some(Announced {
            name,
            running,
            sent,
        }) = self.checksum.take()
        {
            let sent = match (sent, &self.source) {
                (Some(sent), _) => Some(sent),
                (None, Source::Chunked(chunked)) => chunked
                    .trailer
                    .iter()
                    .find(|(field, _)| *field == name)
                    .and_then(|(_, value)| unbase64(value)),
                (None, Source::Plain(_)) => None,
            };
            let computed = running.finish();
            if sent.as_deref() != Some(&computed[..]) {
                return Err(S3Error::new(
                    Code::BadDigest,
                    format!(
                        "the {name} you specified ({}) did not match the calculated checksum {}",
                        sent.as_deref().map_or_else(|| "none".to_owned(), base64),
                        base64(&computed)
                    ),
                ));
            }
        }
        log::debug!("s3: object body sealed, md5 {}", hex(&md5));
        Ok(md5)
    }

    /// Why the body was refused, if it was: a chunk's signature, a digest.
    pub fn take_failure(&mut self) -> Option<S3Error> {
        match &mut self.source {
            Source::Chunked(chunked) if chunked.failure.is_some() => chunked.failure.take(),
            _ => self.failure.take(),
        }
    }

    /// Records `failure` for `take_failure`; the error for the create.
    pub fn refuse(&mut self, failure: S3Error) -> io::Error {
        let message = failure.message.clone();
        self.failure = Some(failure);
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl<R: Read> Read for ObjectBody<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let read = match &mut self.source {
            Source::Plain(inner) => inner.read(out)?,
            Source::Chunked(chunked) => chunked.read(out)?,
        };
        let bytes = &out[..read];
        self.md5.update(bytes);
        if let Some((_, running)) = &mut self.sha256 {
            running.update(bytes);
        }
        if let Some(announced) = &mut self.checksum {
            announced.running.update(bytes);
        }
        Ok(read)
    }
}

/// The checksum the request announces: an `x-amz-checksum-*` header with
/// its value, or one named by `x-amz-trailer`.
fn checksum_of(request: &RequestParts<'_>) -> Result<Option<Announced>, S3Error> {
    let unknown = |name: &str| {
        S3Error::new(
            Code::InvalidRequest,
            format!("{name} is not a checksum this server knows"),
        )
    };
    if let Some(name) = request.header("x-amz-trailer") {
        let name = name.trim().to_ascii_lowercase();
        let checksum = Checksum::for_header(&name).ok_or_else(|| unknown(&name))?;
        return Ok(Some(Announced {
            name,
            running: checksum,
            sent: None,
        }));
    }
    let header = request.headers.iter().find(|(name, _)| {
        name.starts_with("x-amz-checksum-")
            && name != "x-amz-checksum-type"
            && name != "x-amz-checksum-algorithm"
    });
    let Some((name, value)) = header else {
        return Ok(None);
    };
    let checksum = Checksum::for_header(name).ok_or_else(|| unknown(name))?;
    let value = unbase64(value.trim())
        .ok_or_else(|| S3Error::new(Code::InvalidDigest, format!("{name} is not base64")))?;
    Ok(Some(Announced {
        name: name.clone(),
        running: checksum,
        sent: Some(value),
    }))
}

/// The whole body of a request document (at most `limit_bytes`), its
/// digests checked as an object's are.
pub fn read_document(
    call: &mut crate::s3::Call<'_>,
    request: &mut tiny_http::Request,
    limit_bytes: u64,
) -> Result<Vec<u8>, S3Error> {
    let payload = call.take_payload();
    let reader = request.as_reader().take(limit_bytes + 1);
    let mut body = ObjectBody::new(reader, payload, &call.parts)?;
    let mut bytes = Vec::new();
    if let Err(err) = body.read_to_end(&mut bytes) {
        return Err(body
            .take_failure()
            .unwrap_or_else(|| S3Error::new(Code::IncompleteBody, err.to_string())));
    }
    if bytes.len() as u64 > limit_bytes {
        return Err(S3Error::new(
            Code::EntityTooLarge,
            format!("a request document is at most {limit_bytes} bytes"),
        ));
    }
    body.seal()?;
    Ok(bytes)
}
