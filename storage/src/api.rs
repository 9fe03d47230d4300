//! The storage server's internal HTTP API: one match on (method, path),
//! translating between HTTP and the chunk store. It never sees file names.
//!
//! ```text
//! PUT    /chunks                          body: a chunk batch (common::wire)   -> 201
//! GET    /chunks/BLOB?first=I&count=N     -> 200, a chunk batch; 404 missing; 422 corrupt
//! DELETE /blobs/BLOB                      -> 204 (also when nothing was there)
//! GET    /status                          -> 200 {"used_bytes","capacity_bytes","chunks"}
//! GET    /health                          -> 200
//! ```

use common::api::StorageStatus;
use common::chunk::BlobId;
use common::limits::{BATCH_BYTES_MAX, BATCH_CHUNKS_MAX};
use common::server::{self, BodyError, Handler, Reply};
use common::wire;
use tiny_http::{Method, Request};

use crate::error::{STATUS_CREATED, STATUS_NO_CONTENT, STATUS_OK, StorageError};
use crate::store::Store;

pub struct Api {
    pub store: Store,
}

impl Handler for Api {
    fn handle(&self, request: &mut Request) -> Reply {
        let outcome = self.route(request);
        server::reply_for(request, outcome)
    }
}

impl Api {
    fn route(&self, request: &mut Request) -> Result<Reply, StorageError> {
        let path = server::url_path(request).to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (request.method(), segments.as_slice()) {
            (Method::Put, ["chunks"]) => self.put_chunks(request),
            (Method::Get, ["chunks", blob]) => self.get_chunks(request, blob),
            (Method::Delete, ["blobs", blob]) => {
                self.store.delete_blob(parse_blob(blob)?)?;
                Ok(Reply::empty(STATUS_NO_CONTENT))
            }
            (Method::Get, ["status"]) => {
                let usage = self.store.usage();
                let status = StorageStatus {
                    used_bytes: usage.live_bytes,
                    disk_bytes: usage.disk_bytes,
                    capacity_bytes: usage.capacity_bytes,
                    chunks: usage.chunks_count,
                };
                Ok(Reply::json(STATUS_OK, &status))
            }
            (Method::Get | Method::Head, ["health"]) => {
                Ok(Reply::bytes(STATUS_OK, "text/plain", b"ok\n".to_vec()))
            }
            (_, ["chunks"] | ["chunks", _] | ["blobs", _] | ["status"] | ["health"]) => {
                Err(StorageError::MethodNotAllowed)
            }
            _ => Err(StorageError::NoRoute),
        }
    }

    fn put_chunks(&self, request: &mut Request) -> Result<Reply, StorageError> {
        if request.body_length().is_none() && !server::is_chunked(request) {
            return Err(StorageError::LengthRequired);
        }
        let body =
            server::read_body_capped(request, BATCH_BYTES_MAX as u64).map_err(|err| match err {
                BodyError::TooLarge { limit_bytes } => StorageError::BodyTooLarge { limit_bytes },
                BodyError::Io(err) => {
                    StorageError::BadRequest(format!("reading the batch failed: {err}"))
                }
            })?;
        let chunks = wire::decode_batch(&mut &body[..]).map_err(StorageError::BadBatch)?;
        drop(body);
        self.store.put_batch(&chunks)?;
        Ok(Reply::json(
            STATUS_CREATED,
            &serde_json::json!({ "stored": chunks.len() }),
        ))
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
        let chunks = self.store.get_run(blob, first_index, count)?;
        Ok(Reply::bytes(
            STATUS_OK,
            "application/octet-stream",
            wire::encode_batch(&chunks),
        ))
    }
}

fn parse_blob(raw: &str) -> Result<BlobId, StorageError> {
    BlobId::parse(raw).map_err(|err| StorageError::BadRequest(err.to_string()))
}
