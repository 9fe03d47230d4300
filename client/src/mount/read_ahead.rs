//! Reads of a file that is not being written, by one open handle: a
//! sequential reader gets one streaming ranged GET from where it is to the
//! end of the file, consumed as the kernel asks (the naming server fetches
//! chunks ahead of it), so a large file costs one request, not one per
//! 128 KiB; a random reader gets ranged GETs of `RANDOM_READ_BYTES` and
//! their bytes kept for the reads that follow within them.

use std::io::Read;

use fuser::Errno;

use super::remote::Remote;

/// The least a random read fetches: a 4 KiB `pread` costs one request for
/// its neighbourhood, not one per page.
const RANDOM_READ_BYTES: u64 = 64 * 1024;

#[derive(Default)]
pub struct ReadAhead {
    /// A ranged GET from the file's `at`-th byte to its end.
    stream: Option<(u64, Box<dyn Read + Send>)>,
    /// The bytes of the last random read, from the file's `at`-th byte.
    window: Option<(u64, Vec<u8>)>,
    /// Where the last read ended: a read from there is sequential.
    last_end: Option<u64>,
}

impl ReadAhead {
    /// Up to `size` bytes of the file at `path` (`file_size` long when
    /// opened) from `offset`.
    pub fn read(
        &mut self,
        remote: &Remote,
        path: &str,
        offset: u64,
        size: u32,
        file_size: u64,
    ) -> Result<Vec<u8>, Errno> {
        let end = file_size.min(offset.saturating_add(u64::from(size)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let wanted = (end - offset) as usize;
        if let Some((at, bytes)) = &self.window
            && offset >= *at
            && end <= *at + bytes.len() as u64
        {
            let from = (offset - at) as usize;
            self.last_end = Some(end);
            return Ok(bytes[from..from + wanted].to_vec());
        }
        let sequential = self.last_end == Some(offset);
        if !matches!(&self.stream, Some((at, _)) if *at == offset) {
            self.stream = None;
            if sequential {
                self.stream = Some((offset, remote.open_stream(path, offset, None)?));
            }
        }
        if let Some((at, body)) = &mut self.stream {
            let mut bytes = vec![0; wanted];
            let mut filled = 0;
            while filled < wanted {
                match body.read(&mut bytes[filled..]) {
                    Ok(0) => break,
                    Ok(read) => filled += read,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.stream = None;
                        return Err(Errno::EIO);
                    }
                }
            }
            bytes.truncate(filled);
            *at += filled as u64;
            self.last_end = Some(offset + filled as u64);
            return Ok(bytes);
        }
        let fetch_end = file_size.min(offset.saturating_add(RANDOM_READ_BYTES).max(end));
        let bytes = remote.read_range(path, offset, fetch_end)?;
        let served = bytes.len().min(wanted);
        let answer = bytes[..served].to_vec();
        self.window = Some((offset, bytes));
        self.last_end = Some(offset + served as u64);
        Ok(answer)
    }
}
