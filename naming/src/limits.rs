//! The naming server's own limits and defaults, with their relations
//! checked at compile time. Shared limits are in `common::limits`.

use std::time::Duration;

/// The most storage servers one naming server manages; server ids are `u16`.
pub const STORAGE_SERVERS_MAX: usize = 1024;

/// The shortest API token accepted in `API_TOKENS_FILE`.
pub const API_TOKEN_BYTES_MIN: usize = 16;

/// How soon after SIGHUP the tokens file is read again.
pub const TOKENS_RELOAD_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The largest replication factor.
pub const REPLICATION_MAX: usize = 16;

/// `REPLICATION_FACTOR` when unset (SPEC).
pub const REPLICATION_DEFAULT: u64 = 2;

/// Default worker threads: each create or read holds one for its whole
/// transfer, so this is also the number of concurrent transfers.
pub const NAMING_WORKERS_COUNT: u64 = 32;

/// Default period of the heartbeat that asks each storage server its status.
pub const HEARTBEAT_MS_DEFAULT: u64 = 1000;

/// Default silence after which a storage server counts as dead.
pub const DEAD_AFTER_MS_DEFAULT: u64 = 5000;

/// A storage server counts as dead only after this many heartbeats missed.
pub const DEAD_AFTER_HEARTBEATS_MIN: u64 = 3;

/// Default journal growth between checkpoints (bounds restart time).
pub const CHECKPOINT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Default period of reconciliation, which is also an orphan's grace period.
pub const RECONCILE_MS_DEFAULT: u64 = 30_000;

/// Default rate cap of re-replication.
pub const REPLICATION_BYTES_PER_SEC_DEFAULT: u64 = 64 * 1024 * 1024;

/// How often the chunks of dropped file versions are deleted (or retried).
pub const GARBAGE_INTERVAL: Duration = Duration::from_millis(200);

/// Pending chunk deletions kept for retry; past this the oldest are left
/// to reconciliation.
pub const GARBAGE_QUEUE_MAX: usize = 100_000;

/// How often the checkpointer looks whether a checkpoint is due.
pub const CHECKPOINT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Blob ids are reserved in the journal this many at a time: one fsync per
/// million creates, and a restart skips the rest of the range.
pub const BLOB_RESERVATION_COUNT: u64 = 1 << 20;

/// Batches of one upload replicated at once while the next is read from
/// the client: hides each batch's round trip and fsync behind the others,
/// and bounds an upload's memory to this many encoded batches and one read.
pub const UPLOAD_BATCHES_IN_FLIGHT_MAX: usize = 4;

/// After a create fails part-way, up to this much of the rest of its body
/// is read and dropped, so the client is still reading when the error
/// answer comes (most clients stop listening once a write fails). Past it
/// the connection is closed.
pub const FAILED_UPLOAD_DRAIN_BYTES_MAX: u64 = 256 * 1024 * 1024;

const _: () = assert!(STORAGE_SERVERS_MAX <= u16::MAX as usize + 1);
const _: () = assert!(REPLICATION_MAX <= u8::MAX as usize);
const _: () = assert!(REPLICATION_DEFAULT >= 1 && REPLICATION_DEFAULT <= REPLICATION_MAX as u64);
const _: () = assert!(DEAD_AFTER_MS_DEFAULT >= DEAD_AFTER_HEARTBEATS_MIN * HEARTBEAT_MS_DEFAULT);
const _: () = assert!(BLOB_RESERVATION_COUNT >= 1);
const _: () = assert!(UPLOAD_BATCHES_IN_FLIGHT_MAX >= 1);

/// Each pooled connection to a storage server carrying chunk batches has
/// input and output buffers of this size (ureq's default): a 1 MiB batch
/// crosses in eight reads or writes.
pub const DATA_CALL_BUFFER_BYTES: usize = 128 * 1024;

/// The buffers of connections carrying small calls (heartbeats, deletes,
/// listings): ureq zero-fills its buffers, so 128 KiB each would cost an
/// idle server a quarter MiB of RSS per storage server for its heartbeat.
pub const CONTROL_CALL_BUFFER_BYTES: usize = 16 * 1024;

/// Entries of one page of a one-level listing (`GET /files?delimiter=/`)
/// when `limit` is not given, and the most it may ask: a page is built in
/// memory, the directory never is.
pub const LIST_PAGE_DEFAULT: usize = 1000;
pub const LIST_PAGE_MAX: usize = 10_000;

/// Multipart uploads under way at once (S3): each holds its parts'
/// metadata in memory until completed, aborted or expired.
pub const UPLOADS_MAX: usize = 10_000;

/// The highest part number of a multipart upload (S3's rule).
pub const UPLOAD_PART_NUMBER_MAX: u32 = 10_000;

/// Every part of a multipart upload but the last has at least this many
/// bytes (S3's rule: `EntityTooSmall` otherwise).
pub const UPLOAD_PART_BYTES_MIN: u64 = 5 * 1024 * 1024;

/// Default age after which an unfinished multipart upload is abandoned
/// and its parts reclaimed (`S3_UPLOAD_EXPIRY_SECONDS`).
pub const UPLOAD_EXPIRY_DEFAULT: Duration = Duration::from_secs(24 * 3600);
const _: () = assert!(UPLOAD_EXPIRY_DEFAULT.as_millis() <= u64::MAX as u128);

/// Spare batch buffers the naming server keeps between creates: enough
/// for four large creates at once (each holds `UPLOAD_BATCHES_IN_FLIGHT_MAX`
/// encoded batches and one read), about 20 MiB once a burst is over.
pub const BATCH_BUFFERS_KEPT_MAX: usize = 4 * (UPLOAD_BATCHES_IN_FLIGHT_MAX + 1);
