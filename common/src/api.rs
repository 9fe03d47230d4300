//! The JSON shapes of the SPEC's public API and of the storage servers'
//! internal one. Fields may be added, never renamed.

use serde::{Deserialize, Serialize};

/// The `error` of an error response read from `body`, at most
/// `JSON_BODY_BYTES_MAX` of it; `None` when it is not our JSON. Error
/// bodies are informative only: a broken one still leaves the status.
pub fn error_message(body: impl std::io::Read) -> Option<String> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(body, crate::limits::JSON_BODY_BYTES_MAX),
        &mut bytes,
    )
    .ok()?;
    serde_json::from_slice::<ErrorBody>(&bytes)
        .ok()
        .map(|body| body.error)
}

/// Every error response: `{"error": "..."}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `201` answer of `PUT /files/NAME`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Created {
    pub name: String,
    pub size: u64,
    pub chunks: u64,
}

/// One row of `GET /files`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Modification time, RFC 3339 UTC (absent from servers before it).
    #[serde(default)]
    pub mtime: String,
}

/// `GET /stat/NAME`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileStat {
    pub name: String,
    pub size: u64,
    /// Modification time, RFC 3339 UTC (absent from servers before it).
    #[serde(default)]
    pub mtime: String,
    pub chunk_count: u64,
    pub chunks: Vec<ChunkStat>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChunkStat {
    pub index: u64,
    pub size: u64,
    pub replicas: Vec<String>,
}

/// `GET /status` of the naming server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub servers: Vec<ServerStatus>,
    pub files: u64,
    pub chunks: u64,
    pub under_replicated: u64,
    pub replication: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerStatus {
    pub url: String,
    pub alive: bool,
    pub used_bytes: u64,
    /// `None` (JSON `null`) when the server has no `CAPACITY_BYTES`.
    pub capacity_bytes: Option<u64>,
    pub chunks: u64,
    /// Milliseconds since the server last answered; `None` if it never did.
    pub last_heard_ms: Option<u64>,
    /// Being drained: it takes no new chunks and its chunks move elsewhere.
    #[serde(default)]
    pub draining: bool,
    /// Chunks the metadata places on this server (0 once a drain is done).
    #[serde(default)]
    pub placed_chunks: u64,
    /// Bytes it can still take, as it last said (`StorageStatus`).
    #[serde(default)]
    pub free_bytes: Option<u64>,
}

/// `GET /status` of a storage server (internal).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StorageStatus {
    /// Bytes on disk (the segment files, dead records included until
    /// compaction): what `CAPACITY_BYTES` caps. Equal to `disk_bytes`.
    pub used_bytes: u64,
    /// Bytes of the segment files, dead records included until compaction.
    pub disk_bytes: u64,
    pub capacity_bytes: Option<u64>,
    pub chunks: u64,
    /// Data bytes of the chunks still stored (no record headers, no dead
    /// records). Absent from servers that predate it, hence the default.
    #[serde(default)]
    pub live_bytes: u64,
    /// Chunks the background scrub found corrupt (and dropped, so they are
    /// repaired from another replica) since start-up.
    #[serde(default)]
    pub corrupt_chunks_found: u64,
    /// Bytes the store can still grow by: under `CAPACITY_BYTES` and
    /// within what its file system has free (`None`: not known).
    #[serde(default)]
    pub free_bytes: Option<u64>,
}

/// The header of `GET`/`HEAD /files/NAME` giving the file's modification
/// time as the JSON documents do (RFC 3339 UTC, milliseconds), beside the
/// whole-second `Last-Modified`.
pub const MTIME_HEADER: &str = "X-Harbour-Mtime";
