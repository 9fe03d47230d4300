// Harbour: this file is Harbour's addition to tiny_http.

use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read};
use std::sync::Arc;

use crate::util::ConnectionState;

/// Reads a `Transfer-Encoding: chunked` request body and returns the data in it.
///
/// Replaces `chunked_transfer::Decoder` for request bodies, with the same grammar (chunk
/// extensions are skipped, trailers are not supported), for two reasons:
///
/// - that decoder collects the chunk-size line whole, so a client sending an endless one made
///   the server allocate without bound; here the line is capped like a header line;
/// - dropped before the end of the body, it left the rest to be parsed as the next request;
///   here the connection is told to close instead (the size of the rest is unknown, so it is
///   not drained).
pub struct ChunkedDecoder<R>
where
    R: Read,
{
    source: R,
    // bytes left in the current chunk; `None` when a chunk-size line comes next
    remaining_chunk_size: Option<usize>,
    // true once the last chunk has been read
    finished: bool,
    // longest accepted chunk-size line, extensions included
    line_max: usize,
    connection: Arc<ConnectionState>,
}

fn decoder_error(what: &str) -> IoError {
    IoError::new(
        ErrorKind::InvalidInput,
        format!("Error while decoding chunks: {}", what),
    )
}

impl<R> ChunkedDecoder<R>
where
    R: Read,
{
    pub fn new(source: R, line_max: usize, connection: Arc<ConnectionState>) -> ChunkedDecoder<R> {
        ChunkedDecoder {
            source,
            remaining_chunk_size: None,
            finished: false,
            line_max,
            connection,
        }
    }

    fn read_byte(&mut self) -> IoResult<u8> {
        let mut byte = [0];
        loop {
            return match self.source.read(&mut byte) {
                Ok(0) => Err(decoder_error("unexpected end of the body")),
                Ok(_) => Ok(byte[0]),
                Err(ref e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    fn read_crlf(&mut self) -> IoResult<()> {
        if self.read_byte()? == b'\r' && self.read_byte()? == b'\n' {
            Ok(())
        } else {
            Err(decoder_error("CRLF expected"))
        }
    }

    /// Reads a chunk-size line, `<hex size>[;extensions]CRLF`.
    fn read_chunk_size(&mut self) -> IoResult<usize> {
        let mut line = Vec::new();
        loop {
            let byte = self.read_byte()?;
            if byte == b'\r' {
                break;
            }
            if line.len() >= self.line_max {
                return Err(decoder_error("chunk-size line too long"));
            }
            line.push(byte);
        }
        if self.read_byte()? != b'\n' {
            return Err(decoder_error("CRLF expected"));
        }

        let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
        std::str::from_utf8(size)
            .ok()
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
            .ok_or_else(|| decoder_error("invalid chunk size"))
    }
}

impl<R> Read for ChunkedDecoder<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.finished || buf.is_empty() {
            return Ok(0);
        }

        let remaining = match self.remaining_chunk_size {
            Some(remaining) => remaining,
            None => {
                let size = self.read_chunk_size()?;
                if size == 0 {
                    self.read_crlf()?;
                    self.finished = true;
                    return Ok(0);
                }
                self.remaining_chunk_size = Some(size);
                size
            }
        };

        let len = buf.len().min(remaining);
        let read = self.source.read(&mut buf[..len])?;
        if read == 0 {
            return Err(decoder_error("unexpected end of the body"));
        }

        if read == remaining {
            self.read_crlf()?;
            self.remaining_chunk_size = None;
        } else {
            self.remaining_chunk_size = Some(remaining - read);
        }

        Ok(read)
    }
}

impl<R> Drop for ChunkedDecoder<R>
where
    R: Read,
{
    fn drop(&mut self) {
        // runs before `source` (the connection's turn to read) is dropped and handed back
        if !self.finished {
            self.connection.leave_unread_body(usize::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedDecoder;
    use crate::util::ConnectionState;
    use std::io::Read;
    use std::sync::Arc;

    fn decode(body: &[u8], line_max: usize) -> std::io::Result<String> {
        let mut decoded = String::new();
        ChunkedDecoder::new(body, line_max, Arc::new(ConnectionState::default()))
            .read_to_string(&mut decoded)
            .map(|_| decoded)
    }

    #[test]
    fn test_valid_chunks() {
        let body = b"3\r\nhel\r\nb;ext=1\r\nlo world!!!\r\n0\r\n\r\n";
        assert_eq!(decode(body, 100).unwrap(), "hello world!!!");
        assert_eq!(decode(b"0\r\n\r\n", 100).unwrap(), "");
        assert!(decode(b"Ff   \r\n", 100).is_err()); // body too short
    }

    #[test]
    fn test_invalid_chunks() {
        assert!(decode(b"X\r\n", 100).is_err());
        assert!(decode(b"-1\r\n", 100).is_err());
        assert!(decode(b"1 A\r\nx\r\n0\r\n\r\n", 100).is_err());
        assert!(decode(b"3\r\nhelXX0\r\n\r\n", 100).is_err());
        assert!(decode(b"3\r\nhe", 100).is_err());
    }

    #[test]
    fn test_chunk_size_line_is_capped() {
        assert_eq!(decode(b"0003\r\nabc\r\n0\r\n\r\n", 4).unwrap(), "abc");
        assert!(decode(b"00003\r\nabc\r\n0\r\n\r\n", 4).is_err());
        // an endless chunk-size line is refused after `line_max` bytes, not collected
        let endless = std::io::repeat(b'0');
        let mut decoder = ChunkedDecoder::new(endless, 8192, Arc::new(ConnectionState::default()));
        assert!(decoder.read(&mut [0; 16]).is_err());
    }

    #[test]
    fn test_stops_after_last_chunk() {
        let mut source: &[u8] = b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let connection = Arc::new(ConnectionState::default());
        let mut decoded = String::new();
        {
            let mut decoder = ChunkedDecoder::new(&mut source, 100, connection.clone());
            decoder.read_to_string(&mut decoded).unwrap();
            assert_eq!(decoder.read(&mut [0; 16]).unwrap(), 0);
        }
        assert_eq!(decoded, "a");
        assert_eq!(source, b"GET / HTTP/1.1\r\n");
        assert_eq!(connection.take_unread_body(), 0);
    }

    #[test]
    fn test_dropped_early_closes() {
        let connection = Arc::new(ConnectionState::default());
        let mut decoder =
            ChunkedDecoder::new(&b"3\r\nabc\r\n0\r\n\r\n"[..], 100, connection.clone());
        decoder.read_exact(&mut [0; 1]).unwrap();
        drop(decoder);
        assert_eq!(connection.take_unread_body(), usize::MAX);
    }
}
