//! The segment files in `DATA_DIR`, by name: which exist, where a
//! compaction copy goes, and making changes to the folder durable.
//!
//! ```text
//! DATA_DIR/segment-NNNNNNNN.hseg              a segment (id in 8 decimal digits)
//! DATA_DIR/segment-NNNNNNNN.hseg.compacting   compaction's copy of one, until renamed over it
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".hseg";
/// Ends the name of compaction's copy of a segment (after `SEGMENT_SUFFIX`).
const TEMP_SUFFIX: &str = ".compacting";

pub fn segment_path(dir: &Path, segment_id: u32) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{segment_id:08}{SEGMENT_SUFFIX}"))
}

/// Where compaction writes the copy of `segment_id` before renaming it over.
pub fn temp_path(dir: &Path, segment_id: u32) -> PathBuf {
    dir.join(format!(
        "{SEGMENT_PREFIX}{segment_id:08}{SEGMENT_SUFFIX}{TEMP_SUFFIX}"
    ))
}

/// Makes renames, creations and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    common::own_files::sync_dir(dir)
}

/// The ids of the segments in `dir`, in order.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|rest| rest.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|digits| digits.parse::<u32>().ok());
        ids.extend(id);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Removes the copies an interrupted compaction left: never renamed, they
/// never took effect. Returns a note per file.
pub fn remove_leftover_copies(dir: &Path) -> io::Result<Vec<String>> {
    let mut notes = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_copy = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(SEGMENT_PREFIX) && name.ends_with(TEMP_SUFFIX));
        if is_copy {
            fs::remove_file(&path)?;
            notes.push(format!(
                "{}: removed an unfinished compaction copy",
                path.display()
            ));
        }
    }
    if !notes.is_empty() {
        sync_dir(dir)?;
    }
    Ok(notes)
}
