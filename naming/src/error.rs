//! Every way a public request can fail, with the context a user needs, and
//! the one table that maps each to an HTTP status.

use std::fmt;

use common::server::HttpError;

use common::name::{FileName, NameError};

use crate::metadata::change::Refusal;

#[derive(Debug)]
pub enum ApiError {
    BadName(NameError),
    BadRequest(String),
    NoRoute,
    MethodNotAllowed,
    NotFound {
        name: FileName,
    },
    Exists {
        name: FileName,
    },
    /// A directory rename whose prefix no name has.
    NoSuchDirectory {
        prefix: String,
    },
    /// A directory rename onto names that exist.
    TargetsExist {
        prefix: String,
    },
    /// A directory removal of a directory with names under it.
    DirNotEmpty {
        path: String,
    },
    /// A directory made where one, or a file of its name, exists.
    DirExists {
        path: String,
    },
    LengthRequired,
    BodyTooLarge {
        limit_bytes: u64,
    },
    /// The client's body ended before its Content-Length, or broke off.
    BodyIncomplete {
        detail: String,
    },
    NotEnoughServers {
        live: usize,
        needed: usize,
    },
    /// A batch could not be stored on `replication` distinct servers: some
    /// failed, and no live server was left to take their place.
    ReplicasUnavailable {
        detail: String,
    },
    UnknownServer {
        url: String,
    },
    InsufficientStorage {
        detail: String,
    },
    StorageTimeout {
        server: String,
        timeout_ms: u64,
    },
    StorageFailed {
        server: String,
        detail: String,
    },
    /// Every replica of a chunk failed to serve it.
    ChunkUnavailable {
        detail: String,
    },
    Internal(String),
    /// The metadata store cannot be reached (etcd without a quorum).
    MetadataUnavailable {
        detail: String,
    },
    /// No valid credentials for this request: nothing was done.
    Unauthorized(String),
    /// Credentials without the permission this request needs.
    Forbidden(String),
}

impl HttpError for ApiError {
    /// The only status table of the naming server.
    fn status(&self) -> u16 {
        match self {
            ApiError::BadName(_) | ApiError::BadRequest(_) | ApiError::BodyIncomplete { .. } => 400,
            ApiError::NoRoute
            | ApiError::NotFound { .. }
            | ApiError::NoSuchDirectory { .. }
            | ApiError::UnknownServer { .. } => 404,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::MethodNotAllowed => 405,
            ApiError::Exists { .. }
            | ApiError::TargetsExist { .. }
            | ApiError::DirNotEmpty { .. }
            | ApiError::DirExists { .. } => 409,
            ApiError::LengthRequired => 411,
            ApiError::BodyTooLarge { .. } => 413,
            ApiError::Internal(_) => 500,
            ApiError::StorageFailed { .. } | ApiError::ChunkUnavailable { .. } => 502,
            ApiError::NotEnoughServers { .. }
            | ApiError::ReplicasUnavailable { .. }
            | ApiError::MetadataUnavailable { .. } => 503,
            ApiError::StorageTimeout { .. } => 504,
            ApiError::InsufficientStorage { .. } => 507,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadName(err) => write!(f, "bad file name: {err}"),
            ApiError::BadRequest(message) => f.write_str(message),
            ApiError::NoRoute => write!(f, "no such endpoint"),
            ApiError::Unauthorized(message) | ApiError::Forbidden(message) => f.write_str(message),
            ApiError::MethodNotAllowed => write!(f, "method not allowed on this endpoint"),
            ApiError::NotFound { name } => write!(f, "{name}: no such file"),
            ApiError::Exists { name } => write!(f, "{name}: already exists (use overwrite)"),
            ApiError::NoSuchDirectory { prefix } => write!(f, "{prefix}: no file is under it"),
            ApiError::TargetsExist { prefix } => {
                write!(f, "{prefix}: some names under it already exist")
            }
            ApiError::DirNotEmpty { path } => write!(f, "{path}: the directory is not empty"),
            ApiError::DirExists { path } => {
                write!(f, "{path}: a directory or a file of that name exists")
            }
            ApiError::LengthRequired => {
                write!(
                    f,
                    "a create needs a Content-Length or chunked transfer encoding"
                )
            }
            ApiError::BodyTooLarge { limit_bytes } => {
                write!(f, "a file is at most {limit_bytes} bytes")
            }
            ApiError::BodyIncomplete { detail } => write!(f, "the upload broke off: {detail}"),
            ApiError::NotEnoughServers { live, needed } => write!(
                f,
                "{live} storage servers are available, {needed} are needed for the replication factor"
            ),
            ApiError::ReplicasUnavailable { detail } => {
                write!(
                    f,
                    "could not store the data on enough storage servers: {detail}"
                )
            }
            ApiError::UnknownServer { url } => {
                write!(f, "{url} is not a storage server of this cluster")
            }
            ApiError::InsufficientStorage { detail } => write!(f, "insufficient storage: {detail}"),
            ApiError::StorageTimeout { server, timeout_ms } => {
                write!(f, "storage server {server} timed out after {timeout_ms} ms")
            }
            ApiError::StorageFailed { server, detail } => {
                write!(f, "storage server {server} failed: {detail}")
            }
            ApiError::ChunkUnavailable { detail } => {
                write!(f, "no replica could serve the data: {detail}")
            }
            ApiError::Internal(message) => write!(f, "internal error: {message}"),
            ApiError::MetadataUnavailable { detail } => {
                write!(f, "the metadata store is unavailable: {detail}")
            }
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Whether the metadata store could not say if the change was made.
    pub fn undecided(&self) -> bool {
        matches!(self, ApiError::MetadataUnavailable { .. })
    }
}

/// A refusal no caller expected: the store cannot be reached, or a change
/// it cannot take; anything else is a bug.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::Unavailable(detail) => ApiError::MetadataUnavailable { detail },
            Refusal::TooLarge(detail) => ApiError::BadRequest(detail),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
