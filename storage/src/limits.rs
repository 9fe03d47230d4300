//! The storage server's own limits and defaults, with their relations
//! checked at compile time. Shared limits are in `common::limits`;
//! compaction's tuning is in `store/compaction/plan.rs`.

use common::limits::{BATCH_CHUNKS_MAX, CHUNK_SIZE_BYTES};

use crate::record::{RECORD_HEADER_BYTES, SEGMENT_MAGIC_BYTES};

/// Default worker threads: each holds one batch at a time.
pub const STORAGE_WORKERS_COUNT: u64 = 16;

/// Default rate of the background scrub.
pub const SCRUB_BYTES_PER_SEC_DEFAULT: u64 = 8 * 1024 * 1024;

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Appends shorter than this that grow the active segment write zeros
/// ahead of them (`common::zeroed_tail`), so the small appends after them
/// are fsynced without an inode change. Longer ones (large files) just
/// extend the segment: their fsync costs little per byte, and zeros
/// written ahead of them would double the bytes written.
pub const ZEROED_APPEND_BYTES_MAX: u64 = 64 * 1024;

/// Blobs listed per hold of the state lock by `GET /blobs`.
pub const BLOB_LISTING_PAGE_BLOBS_MAX: usize = 4096;

/// Batch-sized record buffers kept between requests (each up to a batch's
/// records): enough for the batches of four large creates arriving at once
/// (four batches in flight each), so a burst reuses them instead of each
/// worker's allocator arena keeping its own: a 5 GiB upload in four
/// concurrent parts peaked at 47 MB per storage server with 4 spares, 27 MB
/// with 16. About 16 MiB stay once a burst is over.
pub const RECORD_BUFFERS_SPARE_MAX: usize = 16;

/// Encoded batches of `GET /chunks` answers kept between requests.
pub const ANSWER_BUFFERS_SPARE_MAX: usize = 4;

/// A whole batch fits in one segment.
const _: () = assert!(
    SEGMENT_BYTES_MAX
        > SEGMENT_MAGIC_BYTES
            + (BATCH_CHUNKS_MAX * (RECORD_HEADER_BYTES + CHUNK_SIZE_BYTES)) as u64
);
