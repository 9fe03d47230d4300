//! Typed calls from the naming server to storage servers, through two
//! shared `ureq::Agent`s (chunk batches; small control calls) that reuse
//! connections and bound every call by `--timeout-ms`. Failures are
//! sorted here, where the server is known.

use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use common::api::StorageStatus;
use common::chunk::{BlobId, ChunkId};
use common::cluster_auth::{ClusterKey, Signer};
use common::codec::Put;
use common::limits::{BATCH_BYTES_MAX, BLOB_DELETES_PER_CALL_MAX, JSON_BODY_BYTES_MAX};
use common::tls::ClientTls;
use common::wire::{self, BLOB_ENTRY_BYTES, ChunkRef};
use ureq::Agent;

use crate::error::ApiError;
use crate::limits::{CONTROL_CALL_BUFFER_BYTES, DATA_CALL_BUFFER_BYTES};

/// Total budget of one blob listing (12 bytes a blob: a million in 12 MB);
/// a stalled listing fails sooner, after one call budget without a byte.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest blob listing read: 16 million blobs.
const LIST_BYTES_MAX: u64 = BLOB_ENTRY_BYTES as u64 * 16 * 1024 * 1024;

pub struct StorageClient {
    /// Chunk batches, with large buffers.
    data: Agent,
    /// Heartbeats, deletes and listings, with small buffers (see
    /// `CONTROL_CALL_BUFFER_BYTES`).
    control: Agent,
    timeout_ms: u64,
}

/// How one call to one storage server failed.
#[derive(Debug)]
pub enum CallError {
    Timeout,
    Unreachable(String),
    /// 507: the server is out of space.
    Full(String),
    /// 422: a stored chunk failed its checksum.
    Corrupt(String),
    /// 404: a chunk is not there.
    Missing(String),
    /// Any other refusal, with its status and message.
    Refused {
        status: u16,
        message: String,
    },
    /// An answer that does not make sense (bad batch, wrong chunks).
    BadAnswer(String),
    /// TLS failed: the server's certificate is not trusted, or it does not
    /// speak TLS (see `common::tls::failure`).
    Tls(String),
    /// The thread making the call panicked (a bug).
    Panicked,
}

impl StorageClient {
    /// A client whose calls carry credentials of `cluster_key` (none when
    /// `None`, with `--insecure`).
    pub fn new(
        timeout: Duration,
        connections_per_server: usize,
        cluster_key: Option<&ClusterKey>,
        tls: &ClientTls,
    ) -> StorageClient {
        let agent = |buffer_bytes: usize| {
            let mut config = tls.configure(Agent::config_builder());
            if let Some(key) = cluster_key {
                config = config.middleware(Signer::new(key.clone()));
            }
            let config = config
                .timeout_connect(Some(timeout))
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .proxy(None)
                .input_buffer_size(buffer_bytes)
                .output_buffer_size(buffer_bytes)
                .max_idle_connections(connections_per_server * 8)
                .max_idle_connections_per_host(connections_per_server)
                .build();
            common::transport::agent(config)
        };
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        StorageClient {
            data: agent(DATA_CALL_BUFFER_BYTES),
            control: agent(CONTROL_CALL_BUFFER_BYTES),
            timeout_ms,
        }
    }

    /// Stores one encoded batch (see `common::wire`).
    pub fn put_batch(&self, server: &str, batch: &[u8]) -> Result<(), CallError> {
        let response = self
            .data
            .put(&format!("{server}/chunks"))
            .header("Content-Type", "application/octet-stream")
            .send(batch)
            .map_err(classify)?;
        expect_done(response)
    }

    /// Reads `count` chunks of `blob` from `first_index` and hands each to
    /// `each` as it arrives and is checked, in order. The answer must hold
    /// exactly those chunks, each intact, or the call fails (after `each`
    /// saw the ones before the fault: a caller drops what it kept).
    pub fn get_run(
        &self,
        server: &str,
        blob: BlobId,
        first_index: u32,
        count: u32,
        each: &mut dyn FnMut(ChunkRef<'_>),
    ) -> Result<(), CallError> {
        let mut response = self.call_get_run(server, blob, first_index, count)?;
        let mut reader = response
            .body_mut()
            .with_config()
            .limit(BATCH_BYTES_MAX as u64)
            .reader();
        decode_exact_run(&mut reader, blob, first_index, count, each)
    }

    /// `get_run`'s batch as it came, checked (a valid batch of exactly those
    /// chunks, which a repair forwards as it is), and its data bytes.
    pub fn get_run_batch(
        &self,
        server: &str,
        blob: BlobId,
        first_index: u32,
        count: u32,
    ) -> Result<(Vec<u8>, u64), CallError> {
        let mut response = self.call_get_run(server, blob, first_index, count)?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(BATCH_BYTES_MAX as u64)
            .read_to_vec()
            .map_err(classify)?;
        let mut data_bytes = 0u64;
        decode_exact_run(&mut &bytes[..], blob, first_index, count, &mut |chunk| {
            data_bytes += chunk.data().len() as u64;
        })?;
        Ok((bytes, data_bytes))
    }

    fn call_get_run(
        &self,
        server: &str,
        blob: BlobId,
        first_index: u32,
        count: u32,
    ) -> Result<ureq::http::Response<ureq::Body>, CallError> {
        let url = format!("{server}/chunks/{blob}?first={first_index}&count={count}");
        let response = self.data.get(&url).call().map_err(classify)?;
        expect_success(response)
    }

    /// Deletes every chunk of each of `blobs` on `server` (at most
    /// `BLOB_DELETES_PER_CALL_MAX`), with one write and one fsync there.
    pub fn delete_blobs(&self, server: &str, blobs: &[BlobId]) -> Result<(), CallError> {
        assert!(blobs.len() <= BLOB_DELETES_PER_CALL_MAX);
        let mut body = Vec::with_capacity(blobs.len() * 8);
        for blob in blobs {
            body.put_u64(blob.0);
        }
        let response = self
            .control
            .post(&format!("{server}/blobs/delete"))
            .header("Content-Type", "application/octet-stream")
            .send(&body[..])
            .map_err(classify)?;
        expect_done(response)
    }

    /// Every blob `server` holds, with its chunk count (`GET /blobs`, see
    /// `common::wire`). A long list gets a longer budget than a batch.
    pub fn list_blobs(&self, server: &str) -> Result<Vec<(BlobId, u32)>, CallError> {
        let response = self
            .control
            .get(&format!("{server}/blobs"))
            .config()
            .timeout_global(Some(LIST_TIMEOUT))
            .timeout_per_read(Some(Duration::from_millis(self.timeout_ms)))
            .build()
            .call()
            .map_err(classify)?;
        let mut response = expect_success(response)?;
        let mut reader = io::BufReader::new(
            response
                .body_mut()
                .with_config()
                .limit(LIST_BYTES_MAX)
                .reader(),
        );
        let mut blobs = Vec::new();
        let mut entry = [0u8; BLOB_ENTRY_BYTES];
        loop {
            match reader.read_exact(&mut entry) {
                Ok(()) => blobs.push(wire::decode_blob_entry(&entry)),
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(blobs),
                Err(err) => return Err(CallError::BadAnswer(err.to_string())),
            }
        }
    }

    /// Drops surplus replicas of chunks `first..first + count` of `blob`.
    pub fn drop_surplus(
        &self,
        server: &str,
        blob: BlobId,
        first: u32,
        count: u32,
    ) -> Result<(), CallError> {
        let url = format!("{server}/blobs/{blob}?first={first}&count={count}");
        let response = self.control.delete(&url).call().map_err(classify)?;
        expect_done(response)
    }

    /// `GET /status`, answered within `timeout` (a heartbeat must not wait
    /// out the full call budget on one frozen server).
    pub fn status(&self, server: &str, timeout: Duration) -> Result<StorageStatus, CallError> {
        let response = self
            .control
            .get(&format!("{server}/status"))
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(classify)?;
        let mut response = expect_success(response)?;
        let body = response
            .body_mut()
            .with_config()
            .limit(JSON_BODY_BYTES_MAX)
            .read_to_vec()
            .map_err(classify)?;
        serde_json::from_slice(&body).map_err(|err| CallError::BadAnswer(err.to_string()))
    }

    /// The user-facing error for a failed call to `server`.
    pub fn api_error(&self, server: &str, err: CallError) -> ApiError {
        let server = server.to_owned();
        match err {
            CallError::Timeout => ApiError::StorageTimeout {
                server,
                timeout_ms: self.timeout_ms,
            },
            CallError::Full(message) => ApiError::InsufficientStorage {
                detail: format!("storage server {server}: {message}"),
            },
            other => ApiError::StorageFailed {
                server,
                detail: other.to_string(),
            },
        }
    }
}

/// A success with nothing to read: the body is read to its end anyway
/// (it is small), because ureq returns a connection to its pool only once
/// the answer on it was read whole. Dropping it unread cost a new
/// connection, and a resolver thread, per call.
fn other_chunks() -> CallError {
    CallError::BadAnswer("the batch holds other chunks than asked for".to_owned())
}

fn expect_done(response: ureq::http::Response<ureq::Body>) -> Result<(), CallError> {
    let mut response = expect_success(response)?;
    let mut rest = response
        .body_mut()
        .with_config()
        .limit(JSON_BODY_BYTES_MAX)
        .reader();
    io::copy(&mut rest, &mut io::sink()).map_err(|err| CallError::BadAnswer(err.to_string()))?;
    Ok(())
}

/// Decodes a batch answered for `count` chunks of `blob` from
/// `first_index` and hands each to `each`, in order: the answer must hold
/// exactly those chunks, each intact (`each` may have seen the ones before
/// a fault: a caller drops what it kept).
fn decode_exact_run(
    reader: &mut dyn Read,
    blob: BlobId,
    first_index: u32,
    count: u32,
    each: &mut dyn FnMut(ChunkRef<'_>),
) -> Result<(), CallError> {
    let mut next = first_index;
    let mut exact = true;
    let decoded = wire::decode_batch_from(reader, &mut |chunk| {
        exact &= chunk.id() == ChunkId { blob, index: next };
        if exact {
            each(chunk);
        }
        next = next.wrapping_add(1);
    })
    .map_err(|err| CallError::BadAnswer(err.to_string()))?;
    if !exact || decoded != count {
        return Err(other_chunks());
    }
    Ok(())
}

fn expect_success(
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, CallError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let message = common::api::error_message(response.body_mut().as_reader())
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(match status {
        404 => CallError::Missing(message),
        422 => CallError::Corrupt(message),
        507 => CallError::Full(message),
        status => CallError::Refused { status, message },
    })
}

fn classify(err: ureq::Error) -> CallError {
    if let Some(why) = common::tls::failure(&err) {
        return CallError::Tls(why);
    }
    match err {
        ureq::Error::Timeout(_) => CallError::Timeout,
        ureq::Error::Io(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            CallError::Timeout
        }
        ureq::Error::Io(err) => CallError::Unreachable(err.to_string()),
        ureq::Error::ConnectionFailed => CallError::Unreachable("connection failed".to_owned()),
        ureq::Error::HostNotFound => CallError::Unreachable("host not found".to_owned()),
        other => CallError::BadAnswer(other.to_string()),
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => write!(f, "timed out"),
            CallError::Unreachable(detail) => write!(f, "unreachable: {detail}"),
            CallError::Full(message)
            | CallError::Corrupt(message)
            | CallError::Missing(message) => f.write_str(message),
            CallError::Refused { status, message } => write!(f, "HTTP {status}: {message}"),
            CallError::BadAnswer(detail) => write!(f, "bad answer: {detail}"),
            CallError::Tls(why) => f.write_str(why),
            CallError::Panicked => f.write_str("the call panicked"),
        }
    }
}
