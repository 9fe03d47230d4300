use std::io::Read;
use std::io::Result as IoResult;
use std::sync::Arc;

use crate::util::ConnectionState;

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the number of remaining bytes is handed
/// to the connection, which throws them away or closes (see `Drop`).
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    // Harbour: replaces upstream's `last_read_signal`, a channel whose receiver was always dropped
    connection: Arc<ConnectionState>,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: usize, connection: Arc<ConnectionState>) -> EqualReader<R> {
        EqualReader {
            reader,
            size,
            connection,
        }
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    // Harbour: upstream read the rest of the body here into `vec![0; remaining]`: a request
    // announcing `Content-Length: 100000000000` aborted the process on the allocation, and one
    // announcing 1 GB blocked the handler's `respond` until the client was done sending. Nothing
    // is read here any more: the count of unread bytes goes to the connection, which, on its
    // own thread and before reading the next request, throws away at most
    // `ConnectionLimits::unread_body_drain_bytes_max` of them through a fixed 8 KiB buffer, or
    // else closes (see `ClientConnection::next`). This runs before `reader` (the connection's
    // turn to read) is dropped and handed back, so the connection always sees the count.
    fn drop(&mut self) {
        if self.size > 0 {
            self.connection.leave_unread_body(self.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use crate::util::ConnectionState;
    use std::io::Read;
    use std::sync::Arc;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let mut equal_reader =
                EqualReader::new(org_reader.by_ref(), 5, Arc::new(ConnectionState::default()));

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());
        let connection = Arc::new(ConnectionState::default());

        {
            let mut equal_reader = EqualReader::new(org_reader.by_ref(), 5, connection.clone());

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        // Harbour: dropping the reader reads nothing; the connection is told what is left
        assert_eq!(connection.take_unread_body(), 4);
        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, "ello world");
    }

    // Harbour: a huge announced body neither allocates nor reads anything on drop
    #[test]
    fn test_huge_unread_body_is_not_read() {
        let mut org_reader: &[u8] = b"just a little";
        let connection = Arc::new(ConnectionState::default());

        let huge = usize::MAX / 2;
        drop(EqualReader::new(&mut org_reader, huge, connection.clone()));

        assert_eq!(connection.take_unread_body(), huge);
        assert_eq!(org_reader, b"just a little");
    }
}
