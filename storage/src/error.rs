//! Every way a storage request can fail, and the one table that maps each to
//! an HTTP status.

use std::fmt;

use common::server::HttpError;
use std::io;

use common::chunk::ChunkId;
use common::cluster_auth::AuthError;
use common::wire::WireError;

#[derive(Debug)]
pub enum StorageError {
    /// No valid cluster credentials: nothing was done.
    Unauthorized(AuthError),
    NoRoute,
    MethodNotAllowed,
    BadRequest(String),
    LengthRequired,
    BodyTooLarge {
        limit_bytes: u64,
    },
    BadBatch(WireError),
    NotFound {
        chunk: ChunkId,
    },
    /// A stored chunk failed its CRC32C: the naming server reads another replica.
    Corrupt {
        chunk: ChunkId,
    },
    /// Over `CAPACITY_BYTES`, or the disk said ENOSPC / EDQUOT.
    Full {
        needed_bytes: u64,
        free_bytes: u64,
    },
    DiskFull(io::Error),
    Io(io::Error),
}

impl HttpError for StorageError {
    /// The only status table of the storage server.
    fn status(&self) -> u16 {
        match self {
            StorageError::Unauthorized(_) => 401,
            StorageError::NoRoute => 404,
            StorageError::MethodNotAllowed => 405,
            StorageError::BadRequest(_) | StorageError::BadBatch(_) => 400,
            StorageError::LengthRequired => 411,
            StorageError::BodyTooLarge { .. } => 413,
            StorageError::NotFound { .. } => 404,
            StorageError::Corrupt { .. } => 422,
            StorageError::Full { .. } | StorageError::DiskFull(_) => 507,
            StorageError::Io(_) => 500,
        }
    }
}

impl StorageError {
    /// Sorts an IO error: a full disk or quota is a 507, anything else a 500.
    pub fn from_io(err: io::Error) -> StorageError {
        match err.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StorageError::DiskFull(err)
            }
            _ => StorageError::Io(err),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Unauthorized(err) => write!(f, "{err}"),
            StorageError::NoRoute => write!(f, "no such endpoint"),
            StorageError::MethodNotAllowed => write!(f, "method not allowed on this endpoint"),
            StorageError::BadRequest(message) => f.write_str(message),
            StorageError::LengthRequired => write!(f, "a chunk batch needs a Content-Length"),
            StorageError::BodyTooLarge { limit_bytes } => {
                write!(f, "a chunk batch is at most {limit_bytes} bytes")
            }
            StorageError::BadBatch(err) => write!(f, "bad chunk batch: {err}"),
            StorageError::NotFound { chunk } => write!(f, "chunk {chunk} is not on this server"),
            StorageError::Corrupt { chunk } => {
                write!(
                    f,
                    "chunk {chunk} is corrupt on this server (CRC32C mismatch)"
                )
            }
            StorageError::Full {
                needed_bytes,
                free_bytes,
            } => write!(
                f,
                "insufficient storage: {needed_bytes} bytes needed, {free_bytes} free under CAPACITY_BYTES"
            ),
            StorageError::DiskFull(err) => {
                write!(f, "insufficient storage: the disk is full ({err})")
            }
            StorageError::Io(err) => write!(f, "disk error: {err}"),
        }
    }
}

impl std::error::Error for StorageError {}
