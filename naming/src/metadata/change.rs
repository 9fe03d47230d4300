//! The durable changes of the naming server's state: what the one door
//! (`MetaStore::apply`) takes, what the journal records and what replay
//! applies again, in the same order. `Metadata::apply` is their meaning.

use std::fmt;
use std::sync::Arc;

use common::chunk::BlobId;
use common::name::FileName;

use crate::metadata::uploads::{Part, UploadId};
use crate::metadata::version::{FileVersion, ObjectMeta, Piece, ServerId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `version` becomes the file `name`, replacing any earlier one; unless
    /// `overwrite`, refused when `name` exists. (The journal keeps no
    /// `overwrite`: a recorded commit was accepted, and replays as one.)
    Commit {
        name: FileName,
        version: Arc<FileVersion>,
        overwrite: bool,
    },
    /// The file `name` is gone.
    Delete { name: FileName },
    /// The file `from` is now called `to`, replacing any file `to`; unless
    /// `overwrite`, refused when `to` exists. (The journal keeps no
    /// `overwrite`, as for commits.)
    Rename {
        from: FileName,
        to: FileName,
        overwrite: bool,
    },
    /// Every file whose name starts with `from` (a directory, ending in
    /// `/`) is renamed to start with `to` instead, all at once; refused if
    /// any new name exists or is not a valid name.
    RenamePrefix { from: String, to: String },
    /// The directory `path` (ending in `/`) exists explicitly; refused if
    /// it exists already, explicitly or implicitly, or a file has its name.
    MakeDir { path: String },
    /// The explicit directory `path` is gone; unless `even_if_not_empty`
    /// (an S3 client deleting a folder marker: what is under it stays, and
    /// the directory with it, implicitly), refused unless it is empty.
    /// (The journal keeps no flag: a recorded removal was accepted, and
    /// replays as one.)
    RemoveDir {
        path: String,
        even_if_not_empty: bool,
    },
    /// Chunks `first_index..first_index + count` of `blob` now live on
    /// `replicas` (a repair copied them there).
    Relocate {
        blob: BlobId,
        first_index: u32,
        count: u32,
        replicas: Vec<ServerId>,
    },
    /// Server id `id` means the storage server at `url`. Ids are handed out
    /// in order and never reused: `id` must be the table's length.
    AddServer { id: ServerId, url: String },
    /// Server `id` is being drained: no new chunks, its replicas move.
    Drain { id: ServerId },
    /// Blob ids below `up_to` may have been handed out: never again.
    ReserveBlobs { up_to: u64 },
    /// An S3 multipart upload `id` (an id `new_blob` handed out) of the
    /// object `name` begins, with the object's metadata but its digest.
    BeginUpload {
        id: UploadId,
        name: FileName,
        started_ms: u64,
        object: Box<ObjectMeta>,
    },
    /// Part `number` of upload `upload` is stored, replacing any earlier
    /// part of that number.
    AddPart {
        upload: UploadId,
        number: u32,
        part: Part,
    },
    /// Upload `upload` becomes the file it names, replacing any earlier
    /// one: its parts `parts` (number and MD5, as the client listed them),
    /// in that order, are the version's pieces. Refused unless each is
    /// stored with that MD5. The parts not listed are garbage.
    CompleteUpload {
        upload: UploadId,
        parts: Vec<(u32, [u8; 16])>,
        /// MD5 of the parts' MD5s: the object's ETag.
        md5: [u8; 16],
        mtime_ms: u64,
    },
    /// Upload `upload` is abandoned (aborted, or expired); its parts are
    /// garbage.
    AbortUpload { upload: UploadId },
}

/// What an accepted change did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// A commit; the version it replaced, whose chunks are now garbage.
    Committed { replaced: Option<Arc<FileVersion>> },
    /// A delete; the version removed.
    Deleted { removed: Arc<FileVersion> },
    /// A rename; the version it replaced at the new name, now garbage.
    Renamed { replaced: Option<Arc<FileVersion>> },
    /// A directory rename of this many files.
    RenamedPrefix { count: u64 },
    /// A part stored; the part of that number it replaced, now garbage.
    PartAdded { replaced: Option<Piece> },
    /// An upload completed; the version it replaced and the pieces of its
    /// parts left out, now garbage.
    Completed {
        replaced: Option<Arc<FileVersion>>,
        unused: Vec<Piece>,
    },
    /// An upload abandoned; its parts' pieces, now garbage.
    Aborted { pieces: Vec<Piece> },
    /// The state changed in some other way.
    Changed,
    /// The state already said so (a second drain, a known server, a lower
    /// reservation): nothing to record.
    Unchanged,
}

/// Why a change was refused; a refused change changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A commit without overwrite of a name that exists.
    NameTaken,
    /// A delete or rename of a name that does not exist (or a directory
    /// rename of a prefix no name has).
    NoSuchFile,
    /// A directory rename into itself, or of a prefix that is not a
    /// directory's, or to a name that is not valid.
    BadRename(String),
    /// A directory removal of a directory with names under it.
    NotEmpty,
    /// A relocation of a blob no file or upload has any more (deleted or
    /// replaced).
    BlobGone,
    /// A server id that is not in the table, or an `AddServer` whose id is
    /// not the next one (another join came first).
    UnknownServer { id: ServerId },
    /// The server table holds `STORAGE_SERVERS_MAX` servers.
    TableFull,
    /// An upload id that is not (or no longer) in the uploads table.
    NoSuchUpload,
    /// `UPLOADS_MAX` uploads are under way.
    TooManyUploads,
    /// A completion listing a part not stored, or stored with another MD5.
    InvalidPart { number: u32 },
    /// The store that makes changes durable cannot be reached (etcd
    /// without a quorum): nothing was changed, or, if the answer was lost,
    /// it is not known yet whether it was.
    Unavailable(String),
    /// A change larger than the store takes at once (a directory rename of
    /// more names than one etcd transaction holds).
    TooLarge(String),
    /// A change that breaks an invariant of the state: a bug, or a damaged
    /// journal at replay.
    Invalid(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NameTaken => f.write_str("the name exists"),
            Refusal::NoSuchFile => f.write_str("no such file"),
            Refusal::BadRename(detail) => f.write_str(detail),
            Refusal::NotEmpty => f.write_str("the directory is not empty"),
            Refusal::BlobGone => f.write_str("no file has that blob"),
            Refusal::UnknownServer { id } => write!(f, "server id {id} is not the expected one"),
            Refusal::TableFull => f.write_str("the server table is full"),
            Refusal::NoSuchUpload => f.write_str("no such upload"),
            Refusal::TooManyUploads => f.write_str("too many multipart uploads are under way"),
            Refusal::InvalidPart { number } => write!(f, "part {number} is not the one stored"),
            Refusal::Unavailable(detail) => {
                write!(f, "the metadata store is unavailable: {detail}")
            }
            Refusal::TooLarge(detail) => f.write_str(detail),
            Refusal::Invalid(detail) => f.write_str(detail),
        }
    }
}
