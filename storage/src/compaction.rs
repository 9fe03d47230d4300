//! Compaction: gives back the disk space of dead records (chunks deleted or
//! rewritten, tombstones no longer needed) by rewriting mostly-dead closed
//! segments with only what is still needed, and merges runs of small ones so
//! their number stays bounded. Invariant: at every moment the segment files
//! replay to the same live chunks. A copy takes effect only by a rename made
//! after the copy was fsynced; the index moves to it only after the rename
//! is durable, and only the runs still at their old place move, so a delete
//! or rewrite made during the copy wins.
//!
//! One thread runs passes (`run`), every `COMPACTION_INTERVAL` or sooner
//! when a request asks (`Schedule::request_pass`). A pass plans from the
//! store's counters (`plan`): groups of consecutive closed segments, each
//! rewritten as one file that takes the id of its newest segment. For each
//! group, oldest first:
//!
//! 1. copies, in pieces of `COPY_PIECE_BYTES` read without the state lock,
//!    every record the index still serves from the group and every
//!    tombstone that a segment older than the group's id may still hold a
//!    record for (`segments.rs`), in their replay order, into
//!    `segment-NNNNNNNN.hseg.compacting`; the state lock is held only to
//!    decide which records of a piece to keep;
//! 2. checks that every live run of the group was copied;
//! 3. fsyncs the copy, renames it over the newest segment, fsyncs the folder;
//! 4. moves the runs to their new places and that segment's handle to the
//!    new file, under the state lock (a read that took an old handle keeps
//!    reading the old file, which lives on until the read drops it);
//! 5. deletes the group's other segments, then fsyncs the folder.
//!
//! A group left with nothing is deleted instead (then the folder fsynced).
//!
//! Crash safety: before step 3's rename, a crash leaves the old segments and
//! a copy that `Store::open` removes. After it, the new file holds every
//! record that was live and every tombstone an older record may need, in
//! the old order and at the place of the group's newest segment, so replay
//! finds the same chunks whether or not the other segments of the group are
//! still there: their live records are overridden by the copies, their dead
//! ones killed by what killed them before, which is either a kept record of
//! the group or newer than the group. A tombstone is dropped only once no
//! segment older than the group holds a record of its blob, and that is
//! known only after the older segment's own rewrite or deletion was durable.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::mem;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::chunk::BlobId;
use common::limits::{CHUNK_SIZE_BYTES, STORAGE_TIMEOUT_MS_DEFAULT};

use crate::index::RECORD_HEADER_BYTES;
use crate::limits::SEGMENT_BYTES_MAX;
use crate::segments::Contents;
use crate::store::{
    self, KIND_CHUNK, RecordAt, SEGMENT_MAGIC, SEGMENT_MAGIC_BYTES, Store, decode_record_header,
};

/// How often the compaction thread looks for work when nobody asks.
pub const COMPACTION_INTERVAL: Duration = Duration::from_millis(1000);

/// A segment is rewritten when less than this share of its bytes is live
/// (records still served and tombstones still needed). At 50% a rewrite at
/// least halves the segment, so each byte is copied a bounded number of
/// times on average.
pub const LIVE_PERCENT_MAX: u64 = 50;

/// The background closes a sparse active segment for compaction only from
/// this size on, so that it does not cut a new segment for a few dead
/// chunks every second. A request that waits on the pass seals at any size.
pub const SEAL_ACTIVE_BYTES_MIN: u64 = 4 * 1024 * 1024;

/// A closed segment under this size is small: runs of small segments are
/// merged, because each segment costs an open file for the process's life.
pub const MERGE_SEGMENT_BYTES_MAX: u64 = SEGMENT_BYTES_MAX / 4;

/// Dense small segments are merged only this many at a time or more, so a
/// merge removes several files for what it copies, and a byte is merged
/// again only into a group several times larger.
pub const MERGE_SEGMENTS_MIN: usize = 4;

/// Bytes of a segment read per step of a copy; the state lock is taken
/// once per step (or per `KEEP_DECISIONS_PER_LOCK_MAX` records), to decide
/// which records of it to keep, and never held while copying.
pub const COPY_PIECE_BYTES: usize = 4 * 1024 * 1024;

/// Records whose fate one hold of the state lock decides: a piece of
/// tombstones holds 150,000 of them, too many lookups for one hold.
pub const KEEP_DECISIONS_PER_LOCK_MAX: usize = 4096;

/// A background pass reads at most this many segment bytes per second, so
/// that it leaves the disk to client traffic. A pass a request waits on is
/// not paced.
pub const COPY_BYTES_PER_SECOND_MAX: u64 = 64 * 1024 * 1024;

/// How long a put or delete waits for the pass it asked for. Well under the
/// naming server's budget per call, so a slow pass costs a 507 or a late
/// room, never a timed-out call.
pub const REQUEST_WAIT: Duration = Duration::from_millis(1000);

const _: () = assert!(COPY_PIECE_BYTES >= 2 * (RECORD_HEADER_BYTES + CHUNK_SIZE_BYTES));
const _: () = assert!(COPY_BYTES_PER_SECOND_MAX >= COPY_PIECE_BYTES as u64);
const _: () = assert!(LIVE_PERCENT_MAX > 0 && LIVE_PERCENT_MAX <= 100);
const _: () = assert!(MERGE_SEGMENTS_MIN >= 2);
const _: () = assert!(MERGE_SEGMENT_BYTES_MAX * MERGE_SEGMENTS_MIN as u64 <= SEGMENT_BYTES_MAX);
const _: () = assert!((REQUEST_WAIT.as_millis() as u64) * 2 <= STORAGE_TIMEOUT_MS_DEFAULT);

/// Where requests ask the compaction thread for a pass and wait for it.
#[derive(Default)]
pub struct Schedule {
    requests: Mutex<Requests>,
    /// The compaction thread waits here for a request or its interval.
    wake: Condvar,
    /// Requesters wait here for the pass they asked for.
    done: Condvar,
}

#[derive(Default)]
struct Requests {
    /// A compaction thread serves requests; without one, nobody waits.
    serving: bool,
    stopping: bool,
    /// Tickets handed out; a pass serves every ticket up to the count when
    /// it started, and sees every delete made before.
    requested: u64,
    started: u64,
    completed: u64,
    /// The largest reclaim asked by tickets no pass has started on yet.
    reclaim_bytes: u64,
}

/// What a pass is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// A request waits on this pass: no pacing, and the active segment is
    /// sealed at any size.
    pub urgent: bool,
    /// Beyond the sparse segments, rewrite the deadest ones until this many
    /// bytes are freed, if the dead records allow.
    pub reclaim_bytes: u64,
}

impl Order {
    pub const BACKGROUND: Order = Order {
        urgent: false,
        reclaim_bytes: 0,
    };
}

/// A segment as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentStat {
    pub id: u32,
    pub len: u64,
    /// Bytes a rewrite would leave: magic, live records, needed tombstones.
    pub kept_bytes: u64,
}

/// What a pass rewrites.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Close the active segment first; its id is then in a group.
    pub seal_active: bool,
    /// Groups of consecutive segments, oldest first, each rewritten as one.
    pub groups: Vec<Vec<u32>>,
}

/// A stretch of consecutive chunks of one blob whose records were copied
/// back to back: from `offset` of `segment` to `new_offset` of the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub segment: u32,
    pub blob: BlobId,
    pub first_index: u32,
    pub count: u32,
    pub offset: u64,
    pub new_offset: u64,
}

/// What became of one group.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Rewritten {
        old_len: u64,
        new_len: u64,
    },
    Deleted {
        old_len: u64,
    },
    /// A segment of it is gone or is the active one: nothing done.
    Skipped,
    /// Live records sit past a damaged record the copy cannot read past:
    /// left as it is, and `segment` not tried again by this process.
    Abandoned {
        segment: u32,
        damaged_from: u64,
    },
}

/// One segment a copy reads.
pub struct Source {
    pub id: u32,
    pub file: Arc<File>,
    pub len: u64,
    /// What the copy found in it.
    pub old: Contents,
}

/// A finished copy of a group, not yet in place.
pub struct Copy {
    /// Oldest first; the copy takes the last one's id.
    pub sources: Vec<Source>,
    pub temp_path: PathBuf,
    pub file: File,
    pub len: u64,
    pub moves: Vec<Move>,
    /// What the copy kept.
    pub new: Contents,
    /// The first damaged record met, as (segment, offset), if any.
    pub damaged_from: Option<(u32, u64)>,
}

impl SegmentStat {
    /// Bytes of records a rewrite keeps.
    pub fn live_bytes(&self) -> u64 {
        self.kept_bytes.saturating_sub(SEGMENT_MAGIC_BYTES)
    }

    /// Bytes a rewrite frees.
    pub fn dead_bytes(&self) -> u64 {
        self.len.saturating_sub(self.kept_bytes)
    }

    /// Whether less than `LIVE_PERCENT_MAX` of the segment is live.
    pub fn is_sparse(&self) -> bool {
        u128::from(self.live_bytes()) * 100 < u128::from(self.len) * u128::from(LIVE_PERCENT_MAX)
    }

    /// Whether rewriting this closed segment is worth it on its own: it is
    /// empty, or sparse with something to free.
    pub fn is_wasteful(&self) -> bool {
        self.live_bytes() == 0 || (self.is_sparse() && self.dead_bytes() > 0)
    }
}

impl Copy {
    /// The id the copy takes: the group's newest.
    pub fn target_id(&self) -> u32 {
        self.sources.last().expect("a group has a segment").id
    }

    pub fn old_len(&self) -> u64 {
        self.sources.iter().map(|source| source.len).sum()
    }

    fn source_ids(&self) -> Vec<u32> {
        self.sources.iter().map(|source| source.id).collect()
    }
}

impl Schedule {
    /// Asks for a pass that also frees `reclaim_bytes` if it can, and waits
    /// until it is done, at most `REQUEST_WAIT`. Returns at once when no
    /// compaction thread runs.
    pub fn request_pass(&self, reclaim_bytes: u64) {
        let deadline = Instant::now() + REQUEST_WAIT;
        let mut requests = self.lock();
        if !requests.serving || requests.stopping {
            return;
        }
        requests.requested += 1;
        let ticket = requests.requested;
        requests.reclaim_bytes = requests.reclaim_bytes.max(reclaim_bytes);
        self.wake.notify_all();
        while requests.completed < ticket && requests.serving {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            requests = self
                .done
                .wait_timeout(requests, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    #[cfg(test)]
    pub fn is_serving(&self) -> bool {
        self.lock().serving
    }

    /// Ends `run` after its current group.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }

    /// Waits for a request or the interval; `None` once stopping. Returns
    /// the order and the ticket it serves.
    fn next_order(&self) -> Option<(Order, u64)> {
        let deadline = Instant::now() + COMPACTION_INTERVAL;
        let mut requests = self.lock();
        loop {
            if requests.stopping {
                return None;
            }
            if requests.requested > requests.started {
                requests.started = requests.requested;
                let order = Order {
                    urgent: true,
                    reclaim_bytes: mem::take(&mut requests.reclaim_bytes),
                };
                return Some((order, requests.started));
            }
            let now = Instant::now();
            if now >= deadline {
                return Some((Order::BACKGROUND, requests.completed));
            }
            requests = self
                .wake
                .wait_timeout(requests, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn finish(&self, ticket: u64) {
        let mut requests = self.lock();
        requests.completed = requests.completed.max(ticket);
        self.done.notify_all();
    }

    /// Whether a request is waiting for a pass that has not started.
    fn urgent_pending(&self) -> bool {
        let requests = self.lock();
        requests.requested > requests.started || requests.stopping
    }

    /// Waits `duration`, or less if a request arrives or `stop` is called.
    fn pause(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        let mut requests = self.lock();
        while requests.requested == requests.started && !requests.stopping {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            requests = self
                .wake
                .wait_timeout(requests, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn set_serving(&self, serving: bool) {
        self.lock().serving = serving;
        self.done.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Requests> {
        // Plain counters: a poisoned lock still holds usable ones.
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Marks the schedule not served once the compaction thread ends, however
/// it ends, so nobody waits on a dead thread.
struct Serving<'a>(&'a Schedule);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.set_serving(false);
    }
}

/// The compaction thread: passes until `Schedule::stop`. IO errors are
/// logged and the group left as it was; the next pass tries again.
pub fn run(store: &Store) {
    store.compaction.set_serving(true);
    let _serving = Serving(&store.compaction);
    let mut abandoned = BTreeSet::new();
    while let Some((order, ticket)) = store.compaction.next_order() {
        pass(store, order, &mut abandoned);
        store.compaction.finish(ticket);
    }
}

/// One pass: plans, then rewrites the chosen groups oldest first (so a
/// tombstone whose older records go in this pass can go too). Returns the
/// bytes freed. `abandoned` are segments not to try again.
pub fn pass(store: &Store, order: Order, abandoned: &mut BTreeSet<u32>) -> u64 {
    let (active_id, stats) = store.segment_stats();
    let plan = plan(active_id, &stats, order, abandoned);
    if plan.seal_active
        && let Err(err) = store.seal_active(active_id)
    {
        eprintln!("compaction: cannot close segment {active_id}: {err}");
    }
    let mut pacer = Pacer::new(&store.compaction, order.urgent);
    let mut freed_bytes = 0;
    for group in plan.groups {
        let what = match group.as_slice() {
            [id] => format!("segment {id}"),
            _ => format!(
                "segments {}..={} (merged)",
                group[0],
                group[group.len() - 1]
            ),
        };
        match compact_group(store, &group, &mut pacer) {
            Ok(Outcome::Rewritten { old_len, new_len }) => {
                freed_bytes += old_len.saturating_sub(new_len);
                println!("compaction: {what}: {old_len} -> {new_len} bytes");
            }
            Ok(Outcome::Deleted { old_len }) => {
                freed_bytes += old_len;
                println!("compaction: {what}: {old_len} bytes, all dead, deleted");
            }
            Ok(Outcome::Skipped) => {}
            Ok(Outcome::Abandoned {
                segment,
                damaged_from,
            }) => {
                abandoned.insert(segment);
                eprintln!(
                    "compaction: segment {segment} has live records past damage at offset {damaged_from}; left as it is"
                );
            }
            Err(err) => eprintln!("compaction: {what}: {err}; left as it was"),
        }
    }
    freed_bytes
}

/// Chooses what a pass rewrites. Pure.
///
/// - The active segment is sealed when sparse, big enough (any size for an
///   urgent order) and holding more dead bytes than its successor's magic
///   costs.
/// - Runs of consecutive closed segments that are small or wasteful are
///   merged, `MERGE_SEGMENTS_MIN` or more at a time, up to a segment's worth
///   of kept bytes, when the largest keeps no more than the others together:
///   a merge then at least doubles the segment a byte is in, so a byte is
///   merged a few times at most before its segment is no longer small.
/// - Every other wasteful closed segment is rewritten alone.
/// - Then, for `order.reclaim_bytes`, the deadest of the rest, one by one,
///   until the dead bytes chosen cover it.
pub fn plan(
    active_id: u32,
    stats: &[SegmentStat],
    order: Order,
    abandoned: &BTreeSet<u32>,
) -> Plan {
    let seal_bytes_min = if order.urgent {
        0
    } else {
        SEAL_ACTIVE_BYTES_MIN
    };
    // What rewriting a segment frees; the active one costs a new magic.
    let freed = |stat: &SegmentStat| {
        if stat.id == active_id {
            stat.dead_bytes().saturating_sub(SEGMENT_MAGIC_BYTES)
        } else {
            stat.dead_bytes()
        }
    };
    let mut by_id: Vec<&SegmentStat> = stats.iter().collect();
    by_id.sort_by_key(|stat| stat.id);
    let usable = |stat: &SegmentStat| !abandoned.contains(&stat.id);
    let seal_active = by_id.iter().any(|stat| {
        stat.id == active_id
            && usable(stat)
            && stat.len >= seal_bytes_min
            && stat.is_sparse()
            && freed(stat) > 0
    });
    let closed = |stat: &SegmentStat| stat.id != active_id || seal_active;
    // Runs of consecutive closed segments worth merging; any other segment,
    // an abandoned one too, ends a run.
    let mut runs: Vec<Vec<&SegmentStat>> = vec![Vec::new()];
    for &stat in &by_id {
        let mergeable = closed(stat)
            && usable(stat)
            && (stat.is_wasteful() || stat.len < MERGE_SEGMENT_BYTES_MAX);
        match runs.last_mut() {
            Some(run) if mergeable => run.push(stat),
            _ => runs.push(Vec::new()),
        }
    }
    let mut groups: Vec<Vec<&SegmentStat>> = runs.iter().flat_map(|run| merges_in(run)).collect();
    let mut chosen: BTreeSet<u32> = groups.iter().flatten().map(|stat| stat.id).collect();
    for &stat in &by_id {
        if closed(stat) && usable(stat) && stat.is_wasteful() && chosen.insert(stat.id) {
            groups.push(vec![stat]);
        }
    }
    let mut freed_bytes: u64 = groups.iter().flatten().map(|stat| freed(stat)).sum();
    if freed_bytes < order.reclaim_bytes {
        let mut rest: Vec<&SegmentStat> = by_id
            .iter()
            .copied()
            .filter(|stat| usable(stat) && freed(stat) > 0 && !chosen.contains(&stat.id))
            .collect();
        rest.sort_by_key(|stat| std::cmp::Reverse(freed(stat)));
        for stat in rest {
            if freed_bytes >= order.reclaim_bytes {
                break;
            }
            freed_bytes += freed(stat);
            chosen.insert(stat.id);
            groups.push(vec![stat]);
        }
    }
    let mut groups: Vec<Vec<u32>> = groups
        .iter()
        .map(|group| group.iter().map(|stat| stat.id).collect())
        .collect();
    groups.sort_unstable();
    Plan {
        seal_active: chosen.contains(&active_id),
        groups,
    }
}

/// The merges to make in `run`, consecutive mergeable segments: windows of
/// at least `MERGE_SEGMENTS_MIN` that keep at most a segment's worth and
/// whose largest keeps no more than the others together, first fit.
fn merges_in<'a>(run: &[&'a SegmentStat]) -> Vec<Vec<&'a SegmentStat>> {
    let mut merges = Vec::new();
    let mut start = 0;
    while start + MERGE_SEGMENTS_MIN <= run.len() {
        let mut end = start;
        let mut kept_bytes = 0;
        while end < run.len() && kept_bytes + run[end].kept_bytes <= SEGMENT_BYTES_MAX {
            kept_bytes += run[end].kept_bytes;
            end += 1;
        }
        let window = &run[start..end];
        let largest = window.iter().map(|stat| stat.kept_bytes).max().unwrap_or(0);
        if window.len() >= MERGE_SEGMENTS_MIN && largest <= kept_bytes - largest {
            merges.push(window.to_vec());
            start = end;
        } else {
            start += 1;
        }
    }
    merges
}

/// Rewrites `group`, consecutive closed segments oldest first, as one
/// segment with only what is still needed, or deletes it if that is nothing.
pub fn compact_group(store: &Store, group: &[u32], pacer: &mut Pacer<'_>) -> io::Result<Outcome> {
    match copy_live(store, group, pacer)? {
        Some(copy) => finish(store, copy),
        None => Ok(Outcome::Skipped),
    }
}

/// Steps 2 to 5 for a finished copy: check it, put it in place (or delete
/// the group if it kept nothing), move the index to it, delete the rest.
pub fn finish(store: &Store, copy: Copy) -> io::Result<Outcome> {
    let source_ids = copy.source_ids();
    if store.live_bytes_not_moved(&source_ids, &copy.moves) != 0 {
        let _ = fs::remove_file(&copy.temp_path);
        let (segment, damaged_from) = copy
            .damaged_from
            .unwrap_or((copy.target_id(), copy.old_len()));
        return Ok(Outcome::Abandoned {
            segment,
            damaged_from,
        });
    }
    let old_len = copy.old_len();
    if copy.len == SEGMENT_MAGIC_BYTES {
        fs::remove_file(&copy.temp_path)?;
        delete_segments(store, &copy.sources)?;
        return Ok(Outcome::Deleted { old_len });
    }
    put_in_place(store, &copy)?;
    let target_id = copy.target_id();
    let Copy {
        mut sources,
        file,
        len: new_len,
        moves,
        new,
        ..
    } = copy;
    let target = sources.pop().expect("a group has a segment");
    store.install_compacted(
        (target_id, file, new_len),
        &moves,
        &source_ids,
        (&target.old, &new),
    );
    // The copy is durable and the index on it: the older segments of the
    // group hold nothing that replay needs any more.
    delete_segments(store, &sources)?;
    Ok(Outcome::Rewritten { old_len, new_len })
}

/// Step 1: copies what `group` still needs into the `.compacting` file of
/// its newest segment. `None` if a segment of it is gone or active.
pub fn copy_live(store: &Store, group: &[u32], pacer: &mut Pacer<'_>) -> io::Result<Option<Copy>> {
    let mut sources = Vec::with_capacity(group.len());
    for &id in group {
        let Some((file, len)) = store.closed_segment(id) else {
            return Ok(None);
        };
        sources.push(Source {
            id,
            file,
            len,
            old: Contents::default(),
        });
    }
    let target_id = *group.last().expect("a group has a segment");
    let temp_path = store::temp_path(store.dir(), target_id);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp_path)?;
    let mut copy = Copy {
        sources,
        temp_path,
        file,
        len: 0,
        moves: Vec::new(),
        new: Contents::default(),
        damaged_from: None,
    };
    match copy_records(store, &mut copy, pacer) {
        Ok(()) => Ok(Some(copy)),
        Err(err) => {
            let _ = fs::remove_file(&copy.temp_path);
            Err(err)
        }
    }
}

/// Step 3: fsyncs the copy, renames it over its group's newest segment and
/// fsyncs the folder; `copy.file` is now that segment's file.
pub fn put_in_place(store: &Store, copy: &Copy) -> io::Result<()> {
    let placed = copy.file.sync_all().and_then(|()| {
        fs::rename(
            &copy.temp_path,
            store::segment_path(store.dir(), copy.target_id()),
        )
    });
    if let Err(err) = placed {
        let _ = fs::remove_file(&copy.temp_path);
        return Err(err);
    }
    // Until the folder is fsynced the rename may not survive a crash; the
    // index keeps the old file meanwhile, which is correct either way.
    store::sync_dir(store.dir())
}

/// Deletes the files of `sources`, which hold nothing replay needs, and
/// only once that is durable lets the store forget them (which may let
/// tombstones of newer segments go).
fn delete_segments(store: &Store, sources: &[Source]) -> io::Result<()> {
    if sources.is_empty() {
        return Ok(());
    }
    for source in sources {
        fs::remove_file(store::segment_path(store.dir(), source.id))?;
    }
    store::sync_dir(store.dir())?;
    for source in sources {
        store.forget_segment(source.id, &source.old);
    }
    Ok(())
}

fn copy_records(store: &Store, copy: &mut Copy, pacer: &mut Pacer<'_>) -> io::Result<()> {
    let target_id = copy.target_id();
    let mut writer = BufWriter::with_capacity(COPY_PIECE_BYTES, &copy.file);
    writer.write_all(&SEGMENT_MAGIC)?;
    copy.len = SEGMENT_MAGIC_BYTES;
    let mut piece = vec![0u8; COPY_PIECE_BYTES];
    for source in &mut copy.sources {
        let mut magic = [0u8; SEGMENT_MAGIC.len()];
        if source.len < SEGMENT_MAGIC_BYTES || {
            source.file.read_exact_at(&mut magic, 0)?;
            magic != SEGMENT_MAGIC
        } {
            copy.damaged_from.get_or_insert((source.id, 0));
            continue;
        }
        let mut offset = SEGMENT_MAGIC_BYTES;
        // The last chunk record copied, while a move may still grow from it.
        let mut growing: Option<GrowingMove> = None;
        while offset < source.len {
            let want = usize::try_from((source.len - offset).min(COPY_PIECE_BYTES as u64))
                .expect("a piece fits memory");
            let piece = &mut piece[..want];
            source.file.read_exact_at(piece, offset)?;
            let is_last = offset + want as u64 == source.len;
            let parsed = parse_records(piece, offset, is_last);
            let keep: Vec<bool> = parsed
                .records
                .chunks(KEEP_DECISIONS_PER_LOCK_MAX)
                .flat_map(|records| store.records_to_keep((source.id, target_id), records))
                .collect();
            for (record, keep) in parsed.records.iter().zip(keep) {
                let is_chunk = record.kind == KIND_CHUNK;
                if is_chunk {
                    source.old.chunk_blobs.insert(record.id.blob);
                } else {
                    source.old.tombstone_blobs.push(record.id.blob);
                }
                if !keep {
                    continue;
                }
                let at = usize::try_from(record.offset - offset).expect("inside the piece");
                let record_bytes = RECORD_HEADER_BYTES + record.len as usize;
                writer.write_all(&piece[at..at + record_bytes])?;
                if is_chunk {
                    copy.new.chunk_blobs.insert(record.id.blob);
                    grow_moves(&mut copy.moves, &mut growing, source.id, record, copy.len);
                } else {
                    copy.new.tombstone_blobs.push(record.id.blob);
                    growing = None;
                }
                copy.len += record_bytes as u64;
            }
            offset += parsed.consumed_bytes;
            pacer.pace(want as u64);
            if parsed.damaged {
                copy.damaged_from.get_or_insert((source.id, offset));
                break;
            }
            assert!(parsed.consumed_bytes > 0, "a piece holds whole records");
        }
    }
    writer.flush()
}

/// Where the move being built ends, to tell whether the next record extends it.
struct GrowingMove {
    next_index: u32,
    old_end: u64,
    last_full: bool,
}

/// Adds copied chunk `record` of `segment`, now at `new_offset`, to the
/// moves: it extends the last one when it is the next chunk of the same
/// blob, laid right after it in the old file (so in the new one too) behind
/// a full chunk, which is the layout of a run.
fn grow_moves(
    moves: &mut Vec<Move>,
    growing: &mut Option<GrowingMove>,
    segment: u32,
    record: &RecordAt,
    new_offset: u64,
) {
    let extends = match (moves.last(), growing.as_ref()) {
        (Some(last), Some(grow)) => {
            last.segment == segment
                && last.blob == record.id.blob
                && grow.next_index == record.id.index
                && grow.old_end == record.offset
                && grow.last_full
        }
        _ => false,
    };
    match moves.last_mut() {
        Some(last) if extends => last.count += 1,
        _ => moves.push(Move {
            segment,
            blob: record.id.blob,
            first_index: record.id.index,
            count: 1,
            offset: record.offset,
            new_offset,
        }),
    }
    *growing = record
        .id
        .index
        .checked_add(1)
        .map(|next_index| GrowingMove {
            next_index,
            old_end: record.offset + (RECORD_HEADER_BYTES + record.len as usize) as u64,
            last_full: record.len as usize == CHUNK_SIZE_BYTES,
        });
}

struct Parsed {
    records: Vec<RecordAt>,
    /// Bytes of whole records at the start of the piece.
    consumed_bytes: u64,
    /// A header failed its checks, or the file ends inside a record.
    damaged: bool,
}

/// The whole records at the start of `piece`, which sits at `offset` of its
/// segment. A record cut by the end of a piece that is not the last is left
/// for the next piece.
fn parse_records(piece: &[u8], offset: u64, is_last: bool) -> Parsed {
    let mut records = Vec::new();
    let mut at = 0;
    let damaged = loop {
        if at == piece.len() {
            break false;
        }
        let Some(header) = piece.get(at..at + RECORD_HEADER_BYTES) else {
            break is_last;
        };
        let header: &[u8; RECORD_HEADER_BYTES] =
            header.try_into().expect("RECORD_HEADER_BYTES long");
        let Some(record) = decode_record_header(header) else {
            break true;
        };
        let end = at + RECORD_HEADER_BYTES + record.len as usize;
        if end > piece.len() {
            break is_last;
        }
        records.push(RecordAt {
            offset: offset + at as u64,
            kind: record.kind,
            id: record.id,
            len: record.len,
        });
        at = end;
    };
    Parsed {
        records,
        consumed_bytes: at as u64,
        damaged,
    }
}

/// Keeps a background pass under `COPY_BYTES_PER_SECOND_MAX`.
pub struct Pacer<'a> {
    schedule: &'a Schedule,
    urgent: bool,
    started: Instant,
    bytes: u64,
}

impl Pacer<'_> {
    pub fn new(schedule: &Schedule, urgent: bool) -> Pacer<'_> {
        Pacer {
            schedule,
            urgent,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` read; waits while ahead of the rate, unless a request
    /// is waiting for a pass.
    fn pace(&mut self, bytes: u64) {
        self.bytes += bytes;
        if self.urgent || self.schedule.urgent_pending() {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / COPY_BYTES_PER_SECOND_MAX as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            self.schedule.pause(ahead);
        }
    }
}

#[cfg(test)]
mod tests;
