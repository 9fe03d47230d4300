//! The `aws-chunked` content encoding, decoded as it streams: chunks of
//! `HEX-SIZE[;chunk-signature=SIG]\r\nDATA\r\n`, a last chunk of size 0,
//! then, for the `-TRAILER` modes, header lines (a checksum, and for
//! signed bodies the trailer's signature) and an empty line. Each signed
//! chunk's signature is checked at its end; a body that fails any check
//! ends in a read error (the upload is then dropped, nothing committed),
//! and `failure` says which S3 error it was. Memory: one line at a time.

use std::io::{self, BufRead, Read};

use sha2::{Digest, Sha256};

use crate::s3::error::{Code, S3Error};
use crate::s3::sigv4::ChunkSigner;

/// The longest chunk header or trailer line accepted.
pub const LINE_BYTES_MAX: usize = 4096;
/// The most trailer lines accepted.
pub const TRAILER_LINES_MAX: usize = 16;

pub struct AwsChunked<R> {
    inner: R,
    signer: Option<ChunkSigner>,
    trailer_expected: bool,
    /// Bytes of the current chunk still to come.
    remaining: u64,
    /// The current chunk's signature, and the hash of its data so far.
    chunk: Option<(String, Sha256)>,
    ended: bool,
    /// The trailer's `(name, value)` lines, once the body has ended.
    pub trailer: Vec<(String, String)>,
    /// Why the body was refused, once it was.
    pub failure: Option<S3Error>,
}

impl<R: BufRead> AwsChunked<R> {
    pub fn new(inner: R, signer: Option<ChunkSigner>, trailer_expected: bool) -> AwsChunked<R> {
        AwsChunked {
            inner,
            signer,
            trailer_expected,
            remaining: 0,
            chunk: None,
            ended: false,
            trailer: Vec::new(),
            failure: None,
        }
    }

    fn fail(&mut self, code: Code, message: &str) -> io::Error {
        self.failure = Some(S3Error::new(code, message));
        io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let limit = LINE_BYTES_MAX as u64 + 2;
        (&mut self.inner).take(limit).read_until(b'\n', &mut line)?;
        match line.strip_suffix(b"\r\n") {
            Some(text) => match String::from_utf8(text.to_vec()) {
                Ok(text) => Ok(text),
                Err(_) => Err(self.fail(Code::IncompleteBody, "an aws-chunked line is not UTF-8")),
            },
            None => Err(self.fail(
                Code::IncompleteBody,
                "the aws-chunked body is cut short or has a line too long",
            )),
        }
    }

    /// Ends the current chunk (its CRLF and signature), then reads the
    /// next chunk's header; at the last chunk, the trailer.
    fn next_chunk(&mut self) -> io::Result<()> {
        if let Some((signature, hash)) = self.chunk.take() {
            if !self.line()?.is_empty() {
                return Err(self.fail(Code::IncompleteBody, "a chunk is longer than its size"));
            }
            self.check_signature(&signature, &hash.finalize())?;
        }
        let header = self.line()?;
        let (size, signature) = match header.split_once(';') {
            Some((size, extension)) => (size, extension.strip_prefix("chunk-signature=")),
            None => (header.as_str(), None),
        };
        let size = u64::from_str_radix(size.trim(), 16)
            .map_err(|_| self.fail(Code::IncompleteBody, "a chunk size is not hex"))?;
        let signature = match (&self.signer, signature) {
            (Some(_), Some(signature)) => signature.to_owned(),
            (Some(_), None) => {
                return Err(self.fail(Code::SignatureDoesNotMatch, "a chunk is not signed"));
            }
            (None, _) => String::new(),
        };
        if size > 0 {
            self.remaining = size;
            self.chunk = Some((signature, Sha256::new()));
            return Ok(());
        }
        self.check_signature(&signature, &Sha256::digest(b""))?;
        self.read_trailer()?;
        self.ended = true;
        Ok(())
    }

    fn check_signature(&mut self, signature: &str, data_hash: &[u8]) -> io::Result<()> {
        let good = match &mut self.signer {
            Some(signer) => signer.check_chunk(data_hash, signature),
            None => true,
        };
        match good {
            true => Ok(()),
            false => Err(self.fail(
                Code::SignatureDoesNotMatch,
                "a chunk's signature does not match its data",
            )),
        }
    }

    fn read_trailer(&mut self) -> io::Result<()> {
        if !self.trailer_expected {
            // The last chunk's CRLF ends the body.
            return match self.line()?.is_empty() {
                true => Ok(()),
                false => Err(self.fail(Code::IncompleteBody, "bytes after the last chunk")),
            };
        }
        let mut signed = String::new();
        let mut trailer_signature = None;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            if self.trailer.len() == TRAILER_LINES_MAX {
                return Err(self.fail(Code::IncompleteBody, "too many trailer lines"));
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(self.fail(Code::IncompleteBody, "a trailer line is not NAME:VALUE"));
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "x-amz-trailer-signature" {
                trailer_signature = Some(value);
                continue;
            }
            signed.push_str(&format!("{name}:{value}\n"));
            self.trailer.push((name, value));
        }
        if self.signer.is_some() {
            let Some(claimed) = trailer_signature else {
                return Err(self.fail(Code::SignatureDoesNotMatch, "the trailer is not signed"));
            };
            let hash = Sha256::digest(signed.as_bytes());
            let good = self
                .signer
                .as_mut()
                .is_some_and(|signer| signer.check_trailer(&hash, &claimed));
            if !good {
                return Err(self.fail(
                    Code::SignatureDoesNotMatch,
                    "the trailer's signature does not match",
                ));
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for AwsChunked<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.failure.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the body was refused",
            ));
        }
        while self.remaining == 0 {
            if self.ended {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let wanted = out
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut out[..wanted])?;
        if read == 0 {
            return Err(self.fail(Code::IncompleteBody, "the body ended inside a chunk"));
        }
        self.remaining -= read as u64;
        if let Some((_, hash)) = &mut self.chunk {
            hash.update(&out[..read]);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use super::AwsChunked;
    use crate::s3::error::Code;

    type Trailer = Vec<(String, String)>;

    fn decode(body: &str, trailer: bool) -> Result<(Vec<u8>, Trailer), Code> {
        let mut chunked = AwsChunked::new(body.as_bytes(), None, trailer);
        let mut out = Vec::new();
        match chunked.read_to_end(&mut out) {
            Ok(_) => Ok((out, chunked.trailer)),
            Err(_) => Err(chunked.failure.unwrap().code),
        }
    }

    #[test]
    fn unsigned_chunks_and_their_trailer_decode() {
        let (data, trailer) = decode(
            "5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(
            trailer,
            vec![("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())]
        );
        assert_eq!(decode("3\r\nabc\r\n0\r\n\r\n", false).unwrap().0, b"abc");
    }

    #[test]
    fn broken_bodies_are_refused() {
        for body in [
            "5\r\nhell",
            "5\r\nhello!\r\n0\r\n\r\n",
            "zz\r\nhello\r\n0\r\n\r\n",
            "5\r\nhello\r\n0\r\n",
            "5\r\nhello\r\n0\r\nno-colon\r\n\r\n",
        ] {
            assert_eq!(
                decode(body, true).err(),
                Some(Code::IncompleteBody),
                "{body:?}"
            );
        }
        let long = format!("{}\r\n", "0".repeat(5000));
        assert_eq!(decode(&long, false).err(), Some(Code::IncompleteBody));
    }
}
