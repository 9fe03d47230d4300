//! The limits every Harbour process shares (chunks, batches, names, files,
//! the HTTP server loop), with the relations between them checked at
//! compile time. A limit of one server lives in that server's `limits.rs`.
//! Units come last in every name.

/// The fixed chunk size of the SPEC. The last chunk of a file may be shorter.
pub const CHUNK_SIZE_BYTES: usize = 1024;

/// Chunks travel between naming and storage in batches of at most this many:
/// one HTTP request, one fsync, one placement decision per batch.
pub const BATCH_CHUNKS_MAX: usize = 1024;

/// Bytes of one chunk frame's header on the wire: chunk id (12), length (4), CRC32C (4).
pub const FRAME_HEADER_BYTES: usize = 20;

/// Bytes of a batch header on the wire: magic (4), version (1), reserved (3), count (4).
pub const BATCH_HEADER_BYTES: usize = 12;

/// The largest encoded batch; storage refuses bigger bodies with 413 unread.
pub const BATCH_BYTES_MAX: usize =
    BATCH_HEADER_BYTES + BATCH_CHUNKS_MAX * (FRAME_HEADER_BYTES + CHUNK_SIZE_BYTES);

/// A file name is 1 to this many bytes of UTF-8.
pub const FILE_NAME_BYTES_MAX: usize = 1024;

/// The largest file the naming server accepts (the SPEC asks for at least
/// 4 GiB). A bound, so a Content-Length beyond it is refused 413 unread.
pub const FILE_BYTES_MAX: u64 = 64 << 30;

/// The largest chunk count of one file; chunk indexes are `u32`.
pub const FILE_CHUNKS_MAX: u64 = FILE_BYTES_MAX / CHUNK_SIZE_BYTES as u64;

/// Blob ids one `POST /blobs/delete` may name (8 bytes each).
pub const BLOB_DELETES_PER_CALL_MAX: usize = 4096;

/// Small JSON bodies (storage status answers, error bodies) are read up to this size.
pub const JSON_BODY_BYTES_MAX: u64 = 64 * 1024;

/// Requests waiting for a worker; past this the server answers 503 at once.
pub const QUEUE_DEPTH_MAX: usize = 64;

/// How long an inbound connection may stall (no byte read or written) before
/// it is closed: idle and slow clients cannot pin a thread for longer.
pub const INBOUND_IO_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// The longest request or header line an inbound request may have.
pub const HEADER_LINE_BYTES_MAX: usize = 8 * 1024;

/// The most header fields an inbound request may have.
pub const HEADERS_COUNT_MAX: usize = 100;

/// An unread request body (a create refused before its body was read) is
/// drained up to this many bytes, on the connection's thread, so a client
/// that sends its body without `Expect: 100-continue` still reads the
/// refusal; past it the connection is closed at once instead.
pub const UNREAD_BODY_DRAIN_BYTES_MAX: usize = 1024 * 1024;

/// Default budget of one naming → storage call (SPEC: `REQUEST_TIMEOUT_MS`).
/// Shared: storage keeps its own waits well under it.
pub const STORAGE_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// Zeros written ahead of the appends to the metadata journal and to the
/// chunk segments, so their fsyncs need not commit an inode change (see
/// `zeroed_tail`). Written again each time the appends reach them.
pub const ZEROED_TAIL_BYTES: u64 = 1024 * 1024;

/// Default bound on the connections a server serves at once; past it a new
/// one is answered 503 and closed instead of queued (each holds a
/// connection thread and its buffers: about 50 KiB).
pub const CONNECTIONS_MAX_DEFAULT: u64 = 2048;

/// The shortest cluster secret accepted (`CLUSTER_SECRET`).
pub const CLUSTER_SECRET_BYTES_MIN: usize = 16;

/// How far a cluster credential's time may be from the receiver's clock,
/// either way; also how long its nonce is remembered against replays.
/// Hosts of one cluster keep their clocks this close (NTP does far better).
pub const CLUSTER_CLOCK_SKEW_MS: u64 = 60_000;

/// Nonces a storage server remembers at most (16 bytes each, about 40 MiB
/// at the bound): 17,000 calls a second for the whole skew window. Past it
/// a call is refused (401, try again), never admitted unchecked.
pub const REPLAY_NONCES_MAX: usize = 1 << 20;

const _: () = assert!(BATCH_CHUNKS_MAX >= 1);
const _: () = assert!(BATCH_BYTES_MAX <= 2 * 1024 * 1024);
const _: () = assert!(FILE_CHUNKS_MAX <= u32::MAX as u64);
const _: () = assert!(FILE_BYTES_MAX >= 4 << 30);
const _: () = assert!(CHUNK_SIZE_BYTES <= u32::MAX as usize);
const _: () = assert!(HEADER_LINE_BYTES_MAX >= FILE_NAME_BYTES_MAX * 3 + 64);
