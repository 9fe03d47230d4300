//! The storage server's internal HTTP API: one match on (method, path),
//! translating between HTTP and the chunk store. It never sees file names.
//!
//! ```text
//! PUT    /chunks                          body: a chunk batch (common::wire)   -> 201
//! GET    /chunks/BLOB?first=I&count=N     -> 200, a chunk batch; 404 missing; 422 corrupt
//! DELETE /blobs/BLOB                      -> 204 (also when nothing was there)
//! DELETE /blobs/BLOB?first=I&count=N      -> 204, surplus replicas dropped (see Store::drop_surplus)
//! POST   /blobs/delete                    body: blob ids, u64 big-endian each (at most
//!                                            BLOB_DELETES_PER_CALL_MAX) -> 204, all deleted
//!                                            with one write and one fsync
//! GET    /blobs                           -> 200, application/octet-stream, streamed:
//!                                            a blob listing (common::wire)
//! GET    /status                          -> 200 {"used_bytes","disk_bytes","live_bytes",
//!                                                 "capacity_bytes","chunks"}
//! GET    /health                          -> 200
//! ```
//!
//! Every request but `GET /health` needs cluster credentials
//! (`common::cluster_auth`); without valid ones the answer is 401 and
//! nothing is read or changed.
//!
//! `used_bytes` and `disk_bytes` are the segment files' bytes (what
//! `CAPACITY_BYTES` caps), `live_bytes` the data of the chunks held.
//! `GET /blobs` is for the naming server's reconciliation: it is read from
//! the index a page at a time, never under one long hold of its lock, so a
//! blob stored or deleted while it streams may or may not be listed, and a
//! blob still being written is listed with the chunks stored so far.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::api::StorageStatus;
use common::chunk::BlobId;
use common::cluster_auth::Verifier;
use common::codec::Reader;
use common::limits::{BATCH_BYTES_MAX, BATCH_CHUNKS_MAX, BLOB_DELETES_PER_CALL_MAX};
use common::pool::{BufferPool, Pooled};
use common::server::{
    self, BodyError, Handler, Reply, STATUS_CREATED, STATUS_NO_CONTENT, STATUS_OK, ServerStats,
};
use common::wire::{self, BatchEncoder};
use tiny_http::{Method, Request};

use crate::error::StorageError;
use crate::limits::{ANSWER_BUFFERS_SPARE_MAX, BLOB_LISTING_PAGE_BLOBS_MAX};
use crate::scrub::ScrubStats;
use crate::store::Store;

/// The batches `GET /chunks` answers with, reused (see `common::pool`).
static ANSWER_BUFFERS: BufferPool = BufferPool::new(ANSWER_BUFFERS_SPARE_MAX);

pub struct Api {
    /// Shared with the compaction thread and with `GET /blobs` streams.
    pub store: Arc<Store>,
    pub scrub: Arc<ScrubStats>,
    /// Checks every request but `GET /health` and `GET /metrics` for
    /// cluster credentials; `None` with `--insecure`.
    pub verifier: Option<Verifier>,
    /// The server loop's counters, for `/metrics`.
    pub stats: Arc<ServerStats>,
}

impl Handler for Api {
    fn handle(&self, request: &mut Request) -> Reply {
        let outcome = self.route(request);
        server::reply_for(request, outcome)
    }

    fn endpoint(&self, request: &Request) -> &'static str {
        let segments: Vec<&str> = server::url_path(request)
            .trim_start_matches('/')
            .split('/')
            .collect();
        match segments.as_slice() {
            ["chunks"] => "/chunks",
            ["chunks", _] => "/chunks/{blob}",
            ["blobs"] => "/blobs",
            ["blobs", "delete"] => "/blobs/delete",
            ["blobs", _] => "/blobs/{blob}",
            ["status"] => "/status",
            ["health"] => "/health",
            ["metrics"] => "/metrics",
            _ => "other",
        }
    }
}

impl Api {
    fn route(&self, request: &mut Request) -> Result<Reply, StorageError> {
        let path = server::url_path(request).to_owned();
        // Health checks and Prometheus need no credentials; neither tells
        // a secret or a byte of a file.
        let open = matches!(request.method(), Method::Get | Method::Head)
            && (path == "/health" || path == "/metrics");
        if let Some(verifier) = &self.verifier
            && !open
        {
            // Before anything is read or done: a refused request changes nothing.
            verifier
                .check(
                    server::header(request, "Authorization"),
                    request.method().as_str(),
                    request.url(),
                )
                .map_err(StorageError::Unauthorized)?;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (request.method(), segments.as_slice()) {
            (Method::Put, ["chunks"]) => self.put_chunks(request),
            (Method::Get, ["chunks", blob]) => self.get_chunks(request, blob),
            (Method::Delete, ["blobs", blob]) => {
                let blob = parse_blob(blob)?;
                match (
                    server::query_param(request, "first"),
                    server::query_param(request, "count"),
                ) {
                    (None, None) => self.store.delete_blob(blob)?,
                    (Some(first), Some(count)) => {
                        let number = |raw: &str| {
                            raw.parse::<u32>().map_err(|_| {
                                StorageError::BadRequest(
                                    "first and count must be whole numbers".to_owned(),
                                )
                            })
                        };
                        self.store
                            .drop_surplus(blob, number(first)?, number(count)?);
                    }
                    _ => {
                        return Err(StorageError::BadRequest(
                            "a range needs both first and count".to_owned(),
                        ));
                    }
                }
                Ok(Reply::empty(STATUS_NO_CONTENT))
            }
            (Method::Post, ["blobs", "delete"]) => self.delete_blobs(request),
            (Method::Get, ["blobs"]) => Ok(Reply::stream(
                STATUS_OK,
                "application/octet-stream",
                Box::new(BlobListing::new(Arc::clone(&self.store))),
                None,
            )),
            (Method::Get, ["status"]) => {
                let usage = self.store.usage();
                let status = StorageStatus {
                    used_bytes: usage.disk_bytes,
                    disk_bytes: usage.disk_bytes,
                    capacity_bytes: usage.capacity_bytes,
                    chunks: usage.chunks_count,
                    live_bytes: usage.live_bytes,
                    corrupt_chunks_found: self.scrub.corrupt_chunks_found.load(Ordering::Relaxed),
                    free_bytes: crate::metrics::free_bytes(&self.store, &usage),
                };
                Ok(Reply::json(STATUS_OK, &status))
            }
            (Method::Get | Method::Head, ["health"]) => {
                Ok(Reply::bytes(STATUS_OK, "text/plain", b"ok\n".to_vec()))
            }
            (Method::Get, ["metrics"]) => Ok(Reply::bytes(
                STATUS_OK,
                "text/plain; version=0.0.4",
                crate::metrics::render(self).into_bytes(),
            )),
            (
                _,
                ["chunks"]
                | ["chunks", _]
                | ["blobs"]
                | ["blobs", _]
                | ["status"]
                | ["health"]
                | ["metrics"],
            ) => Err(StorageError::MethodNotAllowed),
            _ => Err(StorageError::NoRoute),
        }
    }

    fn put_chunks(&self, request: &mut Request) -> Result<Reply, StorageError> {
        if request.body_length().is_none() && !server::is_chunked(request) {
            return Err(StorageError::LengthRequired);
        }
        if request
            .body_length()
            .is_some_and(|len| len > BATCH_BYTES_MAX)
        {
            return Err(StorageError::BodyTooLarge {
                limit_bytes: BATCH_BYTES_MAX as u64,
            });
        }
        // Decoded as it arrives, each chunk turned into its record at once:
        // the batch is held once, as records, and stored only when whole.
        let mut batch = Store::incoming();
        let count = wire::decode_batch_from(request.as_reader(), &mut |chunk| batch.push(chunk))
            .map_err(StorageError::BadBatch)?;
        self.store.put_incoming(batch)?;
        Ok(Reply::json(
            STATUS_CREATED,
            &serde_json::json!({ "stored": count }),
        ))
    }

    /// `POST /blobs/delete`: the body is blob ids (u64 big-endian each).
    fn delete_blobs(&self, request: &mut Request) -> Result<Reply, StorageError> {
        let limit_bytes = (BLOB_DELETES_PER_CALL_MAX * 8) as u64;
        let body = server::read_body_capped(request, limit_bytes).map_err(|err| match err {
            BodyError::TooLarge { limit_bytes } => StorageError::BodyTooLarge { limit_bytes },
            BodyError::Io(err) => {
                StorageError::BadRequest(format!("reading the ids failed: {err}"))
            }
        })?;
        if body.len() % 8 != 0 {
            return Err(StorageError::BadRequest(
                "the body must be 8-byte blob ids".to_owned(),
            ));
        }
        let mut ids = Reader::new(&body);
        let blobs: Vec<BlobId> = (0..body.len() / 8)
            .map(|_| BlobId(ids.u64().expect("a whole number of ids")))
            .collect();
        self.store.delete_blobs(&blobs)?;
        Ok(Reply::empty(STATUS_NO_CONTENT))
    }

    fn get_chunks(&self, request: &Request, blob: &str) -> Result<Reply, StorageError> {
        let blob = parse_blob(blob)?;
        let number = |key: &str| -> Result<u32, StorageError> {
            server::query_param(request, key)
                .and_then(|raw| raw.parse::<u32>().ok())
                .ok_or_else(|| {
                    StorageError::BadRequest(format!(
                        "query parameter {key} must be a whole number"
                    ))
                })
        };
        let first_index = number("first")?;
        let count = number("count")?;
        if count == 0 || count as usize > BATCH_CHUNKS_MAX {
            return Err(StorageError::BadRequest(format!(
                "count must be 1 to {BATCH_CHUNKS_MAX}"
            )));
        }
        if first_index.checked_add(count).is_none() {
            return Err(StorageError::BadRequest(
                "first + count overflows".to_owned(),
            ));
        }
        let mut answer = ANSWER_BUFFERS.take();
        let mut encoder = BatchEncoder::reusing(std::mem::take(&mut *answer), count as usize);
        self.store
            .read_run(blob, first_index, count, &mut |chunk| {
                encoder.push(chunk.id(), chunk.crc(), chunk.data());
            })?;
        *answer = encoder.finish();
        let len = answer.len() as u64;
        Ok(Reply::stream(
            STATUS_OK,
            "application/octet-stream",
            Box::new(PooledAnswer { answer, sent: 0 }),
            Some(len),
        ))
    }
}

/// An encoded batch being sent, whose buffer goes back to the pool after.
struct PooledAnswer {
    answer: Pooled<'static>,
    sent: usize,
}

impl Read for PooledAnswer {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let rest = &self.answer[self.sent..];
        let len = rest.len().min(out.len());
        out[..len].copy_from_slice(&rest[..len]);
        self.sent += len;
        Ok(len)
    }
}

fn parse_blob(raw: &str) -> Result<BlobId, StorageError> {
    BlobId::parse(raw).map_err(|err| StorageError::BadRequest(err.to_string()))
}

/// The body of `GET /blobs`: reads the next page of the index only when
/// the previous one has been sent.
pub struct BlobListing {
    store: Arc<Store>,
    /// The first blob of the next page; `None` once the index is listed.
    next: Option<BlobId>,
    page: Vec<u8>,
    sent: usize,
}

impl BlobListing {
    pub fn new(store: Arc<Store>) -> BlobListing {
        BlobListing {
            store,
            next: Some(BlobId(0)),
            page: Vec::new(),
            sent: 0,
        }
    }
}

impl Read for BlobListing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.sent == self.page.len() {
            let Some(from) = self.next else {
                return Ok(0);
            };
            let counts = self.store.blob_counts(from);
            self.next = match counts.last() {
                Some((last, _)) if counts.len() == BLOB_LISTING_PAGE_BLOBS_MAX => {
                    last.0.checked_add(1).map(BlobId)
                }
                _ => None,
            };
            self.page.clear();
            for (blob, chunks_count) in counts {
                wire::put_blob_entry(&mut self.page, blob, chunks_count);
            }
            self.sent = 0;
        }
        let len = buf.len().min(self.page.len() - self.sent);
        buf[..len].copy_from_slice(&self.page[self.sent..self.sent + len]);
        self.sent += len;
        Ok(len)
    }
}

#[cfg(test)]
mod tests;
