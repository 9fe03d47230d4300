//! The one way a server opens a file inside its own folders (`DATA_DIR`,
//! `META_DIR`): never through a symbolic link. Someone who can plant
//! `segment-00000001.hseg -> /etc/passwd` (or `checkpoint.tmp -> ...`) in a
//! folder must not make the server read, overwrite or truncate another
//! file; such a link makes the open fail (`ELOOP`) with a clear error.
//! New files are created exclusively, so a planted name is never reused.
//! The folders themselves may be links (an operator's choice), and only
//! numbered, fixed names are ever opened: no client input becomes a path.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW);
    options
}

fn explained(path: &Path, opened: io::Result<File>) -> io::Result<File> {
    opened.map_err(|err| match err.raw_os_error() {
        Some(libc::ELOOP) => io::Error::new(
            err.kind(),
            format!(
                "{} is a symbolic link; a server's own files never are, so it is not followed",
                path.display()
            ),
        ),
        _ => err,
    })
}

/// An existing file, for reading.
pub fn open_read(path: &Path) -> io::Result<File> {
    explained(path, options().read(true).open(path))
}

/// An existing file, for reading and writing.
pub fn open_read_write(path: &Path) -> io::Result<File> {
    explained(path, options().read(true).write(true).open(path))
}

/// A new file for reading and writing; fails if the name exists at all
/// (a file, or a link planted there).
pub fn create_new(path: &Path) -> io::Result<File> {
    explained(
        path,
        options().read(true).write(true).create_new(true).open(path),
    )
}

/// A file emptied for writing afresh, created if missing: removed first,
/// so whatever held the name (a link among them) is replaced, not
/// written through.
pub fn create_fresh(path: &Path) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    create_new(path)
}

/// A file to hold a lock on: created if missing, never truncated (another
/// process may hold it), not through a link.
pub fn open_or_create(path: &Path) -> io::Result<File> {
    explained(
        path,
        options().read(true).write(true).create(true).open(path),
    )
}

/// Makes the entries of folder `dir` durable (after a create, rename or
/// remove in it). The folder itself may be a link.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_planted_link_is_never_followed() {
        let dir = crate::testing::fresh_dir("own-files");
        let outside = dir.join("outside");
        std::fs::write(&outside, b"not the server's").unwrap();
        let link = dir.join("segment-00000001.hseg");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        for opened in [
            open_read(&link),
            open_read_write(&link),
            create_new(&link),
            open_or_create(&link),
        ] {
            let err = opened.unwrap_err();
            assert!(
                err.to_string().contains("symbolic link")
                    || err.kind() == io::ErrorKind::AlreadyExists,
                "{err}"
            );
        }
        // Replaced, not written through.
        let mut fresh = create_fresh(&link).unwrap();
        io::Write::write_all(&mut fresh, b"mine").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"not the server's");
        assert_eq!(std::fs::read(&link).unwrap(), b"mine");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
