#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use common::chunk::BlobId;
use common::name::FileName;
use common::rng::Rng;

use super::Metadata;
use super::change::{Applied, Change, Refusal};
use super::version::{FileVersion, Piece, Run, ServerId, chunks_for_size, push_run};
use crate::journal::record::{self, Record};

fn name(text: &str) -> FileName {
    FileName::parse(text).unwrap()
}

fn version(blob: u64, size_bytes: u64) -> Arc<FileVersion> {
    let mut runs = Vec::new();
    let chunks = chunks_for_size(size_bytes) as u32;
    if chunks > 0 {
        push_run(&mut runs, chunks, &[0, 1]);
    }
    Arc::new(FileVersion::whole(
        Piece {
            blob: BlobId(blob),
            size_bytes,
            runs,
        },
        0,
        None,
    ))
}

fn commit(text: &str, version: Arc<FileVersion>, overwrite: bool) -> Change {
    Change::Commit {
        name: name(text),
        version,
        overwrite,
    }
}

/// Two servers and blobs below 1000 reserved: ready for commits.
fn with_servers() -> Metadata {
    let mut metadata = Metadata::default();
    for (id, url) in ["http://a:1", "http://b:2", "http://c:3"]
        .iter()
        .enumerate()
    {
        let add = Change::AddServer {
            id: id as ServerId,
            url: url.to_string(),
        };
        assert_eq!(metadata.apply(&add), Ok(Applied::Changed));
    }
    metadata
        .apply(&Change::ReserveBlobs { up_to: 1000 })
        .unwrap();
    metadata
}

#[test]
fn runs_merge_when_replicas_match() {
    let mut runs = Vec::new();
    push_run(&mut runs, 256, &[0, 1]);
    push_run(&mut runs, 256, &[0, 1]);
    push_run(&mut runs, 3, &[1, 2]);
    assert_eq!(
        runs,
        vec![
            Run {
                first_index: 0,
                count: 512,
                replicas: vec![0, 1].into()
            },
            Run {
                first_index: 512,
                count: 3,
                replicas: vec![1, 2].into()
            },
        ]
    );
    let version = FileVersion::whole(
        Piece {
            blob: BlobId(1),
            size_bytes: 514 * 1024 + 1,
            runs,
        },
        0,
        None,
    );
    version.assert_well_formed(2);
    assert_eq!(version.pieces[0].chunk_size(514), 1);
    assert_eq!(version.pieces[0].chunk_size(0), 1024);
    assert_eq!(version.pieces[0].run_of(511).first_index, 0);
    assert_eq!(version.pieces[0].run_of(512).first_index, 512);
}

#[test]
fn chunk_counts_at_the_boundaries() {
    for (size, chunks) in [(0, 0), (1, 1), (1023, 1), (1024, 1), (1025, 2)] {
        assert_eq!(chunks_for_size(size), chunks, "size {size}");
    }
}

#[test]
fn a_commit_without_overwrite_of_a_taken_name_is_refused_and_changes_nothing() {
    let mut metadata = with_servers();
    assert!(matches!(
        metadata.apply(&commit("a", version(1, 10), false)),
        Ok(Applied::Committed { replaced: None })
    ));
    assert_eq!(
        metadata.apply(&commit("a", version(2, 2048), false)),
        Err(Refusal::NameTaken)
    );
    assert_eq!(metadata.get(&name("a")).unwrap().first_blob(), BlobId(1));
    assert_eq!(metadata.chunks_count(), 1);
    metadata.check_invariants().unwrap();
}

#[test]
fn overwrite_returns_the_replaced_version_and_delete_removes() {
    let mut metadata = with_servers();
    metadata
        .apply(&commit("a", version(1, 3000), true))
        .unwrap();
    let replaced = metadata.apply(&commit("a", version(2, 10), true)).unwrap();
    assert!(
        matches!(replaced, Applied::Committed { replaced: Some(old) } if old.first_blob() == BlobId(1))
    );
    assert_eq!(metadata.chunks_count(), 1);
    assert!(metadata.piece_of(BlobId(1)).is_none());
    let deleted = metadata.apply(&Change::Delete { name: name("a") }).unwrap();
    assert!(matches!(deleted, Applied::Deleted { removed } if removed.first_blob() == BlobId(2)));
    assert_eq!(
        metadata.apply(&Change::Delete { name: name("a") }),
        Err(Refusal::NoSuchFile)
    );
    assert_eq!(metadata.chunks_count(), 0);
    metadata.check_invariants().unwrap();
}

#[test]
fn a_commit_past_the_reservation_or_on_unknown_servers_is_invalid() {
    let mut metadata = with_servers();
    assert!(matches!(
        metadata.apply(&commit("a", version(1000, 10), true)),
        Err(Refusal::Invalid(_))
    ));
    let mut runs = Vec::new();
    push_run(&mut runs, 1, &[0, 7]);
    let unknown = Arc::new(FileVersion::whole(
        Piece {
            blob: BlobId(3),
            size_bytes: 10,
            runs,
        },
        0,
        None,
    ));
    assert!(matches!(
        metadata.apply(&commit("a", unknown, true)),
        Err(Refusal::Invalid(_))
    ));
    assert_eq!(metadata.files_count(), 0);
}

#[test]
fn the_server_table_only_grows_and_drains_are_idempotent() {
    let mut metadata = with_servers();
    let known = Change::AddServer {
        id: 1,
        url: "http://b:2".to_owned(),
    };
    assert_eq!(metadata.apply(&known), Ok(Applied::Unchanged));
    let skipping = Change::AddServer {
        id: 5,
        url: "http://d:4".to_owned(),
    };
    assert_eq!(
        metadata.apply(&skipping),
        Err(Refusal::UnknownServer { id: 5 })
    );
    let renaming = Change::AddServer {
        id: 1,
        url: "http://d:4".to_owned(),
    };
    assert_eq!(
        metadata.apply(&renaming),
        Err(Refusal::UnknownServer { id: 1 })
    );
    assert_eq!(
        metadata.apply(&Change::Drain { id: 2 }),
        Ok(Applied::Changed)
    );
    assert_eq!(
        metadata.apply(&Change::Drain { id: 2 }),
        Ok(Applied::Unchanged)
    );
    assert_eq!(
        metadata.apply(&Change::Drain { id: 3 }),
        Err(Refusal::UnknownServer { id: 3 })
    );
    assert_eq!(metadata.accepting_servers(), [0, 1]);
    assert_eq!(metadata.server_id("http://c:3"), Some(2));
}

#[test]
fn list_filters_by_prefix_in_name_order() {
    let mut metadata = with_servers();
    for (idx, text) in ["b/2", "a", "b/1", "c", "b"].iter().enumerate() {
        metadata
            .apply(&commit(text, version(idx as u64, idx as u64), true))
            .unwrap();
    }
    let names = |prefix: &str| {
        metadata
            .list(prefix)
            .into_iter()
            .map(|entry| entry.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(""), ["a", "b", "b/1", "b/2", "c"]);
    assert_eq!(names("b/"), ["b/1", "b/2"]);
    assert_eq!(names("zz"), Vec::<String>::new());
}

#[test]
fn relocating_a_range_splits_runs_and_merges_equal_neighbours() {
    let mut metadata = with_servers();
    let a = name("a");
    let mut runs = Vec::new();
    push_run(&mut runs, 256, &[0, 1]);
    push_run(&mut runs, 256, &[1, 2]);
    push_run(&mut runs, 10, &[0, 2]);
    let version = Arc::new(FileVersion::whole(
        Piece {
            blob: BlobId(5),
            size_bytes: 522 * 1024,
            runs,
        },
        0,
        None,
    ));
    metadata.apply(&commit("a", version, true)).unwrap();
    let relocate = |first_index, count, replicas: &[ServerId]| Change::Relocate {
        blob: BlobId(5),
        first_index,
        count,
        replicas: replicas.to_vec(),
    };
    // Chunks 200..300 move to {2, 1}: cuts the first run, takes part of the second.
    metadata.apply(&relocate(200, 100, &[2, 1])).unwrap();
    let runs = |metadata: &Metadata| {
        let version = metadata.get(&a).unwrap();
        version.pieces[0]
            .runs
            .iter()
            .map(|run| (run.first_index, run.count, run.replicas.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        runs(&metadata),
        [
            (0, 200, vec![0, 1]),
            (200, 100, vec![2, 1]),
            (300, 212, vec![1, 2]),
            (512, 10, vec![0, 2]),
        ]
    );
    // Moving the last run onto the previous run's replicas merges them.
    metadata.apply(&relocate(512, 10, &[1, 2])).unwrap();
    assert_eq!(runs(&metadata).len(), 3);
    metadata.check_invariants().unwrap();
    // A blob no file has any more is refused, and nothing changes.
    metadata.apply(&Change::Delete { name: a.clone() }).unwrap();
    assert_eq!(
        metadata.apply(&relocate(0, 1, &[2, 1])),
        Err(Refusal::BlobGone)
    );
}

/// The model of one file: its blob and each chunk's replicas.
#[derive(Clone, Debug)]
struct ModelFile {
    blob: u64,
    size_bytes: u64,
    chunks: Vec<Vec<ServerId>>,
}

/// What the state should be, kept the dumbest way: a replica set per chunk.
#[derive(Default)]
struct Model {
    files: BTreeMap<String, ModelFile>,
    servers: Vec<(String, bool)>,
    reserved: u64,
}

const NAMES: [&str; 6] = ["a", "b", "d/x", "d/y", "e", "long/name/z"];

fn random_replicas(rng: &mut Rng, servers_count: usize) -> Vec<ServerId> {
    let mut ids: Vec<ServerId> = (0..servers_count as ServerId).collect();
    let wanted = 1 + rng.below(ids.len().min(3) as u64) as usize;
    let mut chosen = Vec::new();
    while chosen.len() < wanted {
        let idx = rng.below(ids.len() as u64) as usize;
        chosen.push(ids.remove(idx));
    }
    chosen
}

fn version_of_model(file: &ModelFile) -> FileVersion {
    let mut runs = Vec::new();
    for replicas in &file.chunks {
        push_run(&mut runs, 1, replicas);
    }
    FileVersion::whole(
        Piece {
            blob: BlobId(file.blob),
            size_bytes: file.size_bytes,
            runs,
        },
        0,
        None,
    )
}

/// A random change and the model's verdict on it.
fn step(rng: &mut Rng, model: &mut Model) -> (Change, Result<(), ()>) {
    let servers_count = model.servers.len();
    match rng.below(10) {
        0 => {
            let id = model.servers.len() as ServerId;
            let id = if rng.chance(20) { id + 1 } else { id };
            let url = format!("http://s{}:1", rng.below(6));
            let known = model.servers.iter().any(|(known, _)| *known == url);
            let change = Change::AddServer {
                id,
                url: url.clone(),
            };
            if usize::from(id) == model.servers.len() && !known {
                model.servers.push((url, false));
                (change, Ok(()))
            } else {
                (change, Err(()))
            }
        }
        1 => {
            let id = rng.below(servers_count as u64 + 1) as ServerId;
            let outcome = match model.servers.get_mut(usize::from(id)) {
                Some((_, draining)) => {
                    *draining = true;
                    Ok(())
                }
                None => Err(()),
            };
            (Change::Drain { id }, outcome)
        }
        2 => {
            let up_to = rng.below(400);
            model.reserved = model.reserved.max(up_to);
            (Change::ReserveBlobs { up_to }, Ok(()))
        }
        3..=5 if servers_count > 0 => {
            let name = *rng.pick(&NAMES);
            let overwrite = rng.chance(60);
            let size_bytes = rng.below(20 * 1024);
            let taken_blobs: Vec<u64> = model.files.values().map(|file| file.blob).collect();
            let blob = match rng.below(10) {
                0 => model.reserved + rng.below(3),
                1 if !taken_blobs.is_empty() => *rng.pick(&taken_blobs),
                _ => rng.below(400),
            };
            let file = ModelFile {
                blob,
                size_bytes,
                chunks: (0..chunks_for_size(size_bytes))
                    .map(|_| random_replicas(rng, servers_count))
                    .collect(),
            };
            let version = Arc::new(version_of_model(&file));
            let change = commit(name, version, overwrite);
            let blob_holder = model
                .files
                .iter()
                .find(|(_, held)| held.blob == blob)
                .map(|(holder, _)| holder.clone());
            let valid = blob < model.reserved && blob_holder.is_none_or(|holder| holder == name);
            if (!overwrite && model.files.contains_key(name)) || !valid {
                return (change, Err(()));
            }
            model.files.insert(name.to_owned(), file);
            (change, Ok(()))
        }
        6 => {
            let name = *rng.pick(&NAMES);
            let outcome = model.files.remove(name).map(drop).ok_or(());
            (
                Change::Delete {
                    name: self::name(name),
                },
                outcome,
            )
        }
        _ => {
            let files: Vec<(String, ModelFile)> = model
                .files
                .iter()
                .map(|(name, file)| (name.clone(), file.clone()))
                .collect();
            let Some((name, file)) = files.get(rng.below(files.len() as u64 + 1) as usize) else {
                let change = Change::Relocate {
                    blob: BlobId(rng.below(400) + 400),
                    first_index: 0,
                    count: 1,
                    replicas: vec![0],
                };
                return (change, Err(()));
            };
            let chunks = file.chunks.len() as u64;
            let first_index = rng.below(chunks + 1);
            let count = rng.below(chunks + 2 - first_index);
            let replicas = random_replicas(rng, servers_count.max(1));
            let change = Change::Relocate {
                blob: BlobId(file.blob),
                first_index: first_index as u32,
                count: count as u32,
                replicas: replicas.clone(),
            };
            let fits = count >= 1 && first_index + count <= chunks;
            if !fits || servers_count == 0 {
                return (change, Err(()));
            }
            let held = model.files.get_mut(name).unwrap();
            for chunk in &mut held.chunks[first_index as usize..(first_index + count) as usize] {
                *chunk = replicas.clone();
            }
            (change, Ok(()))
        }
    }
}

fn assert_matches_model(metadata: &Metadata, model: &Model) {
    metadata.check_invariants().unwrap();
    assert_eq!(metadata.blobs_reserved_up_to(), model.reserved);
    assert_eq!(metadata.servers_count(), model.servers.len());
    for (id, (url, draining)) in model.servers.iter().enumerate() {
        assert_eq!(&*metadata.server_url(id as ServerId), url);
        assert_eq!(metadata.is_draining(id as ServerId), *draining);
    }
    let names: Vec<String> = metadata
        .list("")
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(names, model.files.keys().cloned().collect::<Vec<_>>());
    for (text, file) in &model.files {
        let version = metadata.get(&name(text)).unwrap();
        assert_eq!(
            (version.first_blob().0, version.size_bytes),
            (file.blob, file.size_bytes)
        );
        for (index, replicas) in file.chunks.iter().enumerate() {
            assert_eq!(
                &*version.pieces[0].run_of(index as u64).replicas,
                &replicas[..],
                "{text}:{index}"
            );
        }
        // Runs stay maximal: neighbours never share replicas.
        assert!(
            version.pieces[0]
                .runs
                .windows(2)
                .all(|pair| pair[0].replicas != pair[1].replicas)
        );
    }
}

#[test]
fn random_changes_keep_the_invariants_and_agree_with_a_model() {
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let mut metadata = Metadata::default();
        let mut model = Model::default();
        for _ in 0..300 {
            let (change, expected) = step(&mut rng, &mut model);
            let outcome = metadata.apply(&change);
            assert_eq!(
                outcome.is_ok(),
                expected.is_ok(),
                "seed {seed}: {change:?} gave {outcome:?}"
            );
            assert_matches_model(&metadata, &model);
        }
    }
}

#[test]
fn a_snapshot_through_the_journal_codec_rebuilds_the_same_state() {
    for seed in 0..20 {
        let mut rng = Rng::new(1000 + seed);
        let mut metadata = Metadata::default();
        let mut model = Model::default();
        for _ in 0..200 {
            let (change, _) = step(&mut rng, &mut model);
            let _ = metadata.apply(&change);
        }
        let mut rebuilt = Metadata::default();
        for change in metadata.snapshot() {
            let bytes = record::frame(&Record::Change(change));
            let payload = record::read_frame(&mut &bytes[..]).unwrap().unwrap();
            let Record::Change(decoded) = record::parse(&payload).unwrap() else {
                panic!("a change decodes as a change");
            };
            rebuilt.apply(&decoded).unwrap();
        }
        assert_matches_model(&rebuilt, &model);
        assert_eq!(rebuilt.snapshot(), metadata.snapshot());
    }
}

fn rename(from: &str, to: &str, overwrite: bool) -> Change {
    Change::Rename {
        from: name(from),
        to: name(to),
        overwrite,
    }
}

#[test]
fn a_rename_moves_a_version_and_refuses_a_taken_name_unless_overwriting() {
    let mut metadata = with_servers();
    metadata
        .apply(&commit("a", version(1, 5000), false))
        .unwrap();
    metadata
        .apply(&commit("b", version(2, 100), false))
        .unwrap();
    assert_eq!(
        metadata.apply(&rename("nope", "x", false)),
        Err(Refusal::NoSuchFile)
    );
    assert_eq!(
        metadata.apply(&rename("a", "b", false)),
        Err(Refusal::NameTaken)
    );
    assert_eq!(
        metadata.apply(&rename("a", "a", false)),
        Ok(Applied::Unchanged)
    );
    assert_eq!(
        metadata.apply(&rename("a", "c", false)),
        Ok(Applied::Renamed { replaced: None })
    );
    assert!(!metadata.contains(&name("a")));
    assert_eq!(metadata.get(&name("c")).unwrap().first_blob(), BlobId(1));
    assert_eq!(metadata.piece_of(BlobId(1)).unwrap().size_bytes, 5000);
    let Ok(Applied::Renamed {
        replaced: Some(old),
    }) = metadata.apply(&rename("c", "b", true))
    else {
        panic!("an overwriting rename replaces b");
    };
    assert_eq!(old.first_blob(), BlobId(2));
    assert_eq!(metadata.chunks_count(), 5);
    assert!(metadata.piece_of(BlobId(2)).is_none());
    metadata.check_invariants().unwrap();
}

#[test]
fn a_directory_rename_moves_every_name_under_it_or_none() {
    let mut metadata = with_servers();
    for (idx, file) in ["d/1", "d/sub/2", "d/sub/3", "dx", "e/taken"]
        .iter()
        .enumerate()
    {
        metadata
            .apply(&commit(file, version(idx as u64 + 1, 10), false))
            .unwrap();
    }
    let prefix = |from: &str, to: &str| Change::RenamePrefix {
        from: from.to_owned(),
        to: to.to_owned(),
    };
    assert_eq!(
        metadata.apply(&prefix("zz/", "y/")),
        Err(Refusal::NoSuchFile)
    );
    assert!(matches!(
        metadata.apply(&prefix("d/", "d/sub/")),
        Err(Refusal::BadRename(_))
    ));
    assert!(matches!(
        metadata.apply(&prefix("d", "e/")),
        Err(Refusal::BadRename(_))
    ));
    // One target exists: nothing moves.
    metadata
        .apply(&commit("f/sub/2", version(9, 1), false))
        .unwrap();
    assert_eq!(metadata.apply(&prefix("d/", "f/")), Err(Refusal::NameTaken));
    assert!(metadata.contains(&name("d/1")));
    assert_eq!(
        metadata.apply(&prefix("d/", "g/")),
        Ok(Applied::RenamedPrefix { count: 3 })
    );
    let names: Vec<String> = metadata
        .list("")
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(
        names,
        ["dx", "e/taken", "f/sub/2", "g/1", "g/sub/2", "g/sub/3"]
    );
    assert_eq!(metadata.piece_of(BlobId(2)).unwrap().size_bytes, 10);
    metadata.check_invariants().unwrap();
    // Replayed from its journal record, the rename does the same.
    let framed = record::frame(&Record::Change(prefix("g/", "h/")));
    let Ok(Record::Change(replayed)) = record::parse(&framed[record::FRAME_HEADER_BYTES..]) else {
        panic!("the record parses");
    };
    assert_eq!(
        metadata.apply(&replayed),
        Ok(Applied::RenamedPrefix { count: 3 })
    );
}

/// What `list_level` must give, computed the slow way: every entry
/// directly under `prefix`, sorted by key, files as names, directories
/// (explicit, or implied by a deeper name) ending in `/`.
fn level_model(metadata: &Metadata, dirs: &[String], prefix: &str) -> Vec<String> {
    let mut keys = std::collections::BTreeSet::new();
    let names = metadata.list("").into_iter().map(|entry| entry.name);
    for name in names.chain(dirs.iter().cloned()) {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        match rest.find('/') {
            Some(cut) => keys.insert(format!("{prefix}{}", &rest[..=cut])),
            None if !rest.is_empty() => keys.insert(name.clone()),
            None => false,
        };
    }
    keys.into_iter().collect()
}

#[test]
fn one_level_listings_page_through_every_entry_once_in_order() {
    let mut rng = Rng::new(11);
    let parts = ["a", "b", "ab", "a0", "z", "é"];
    for round in 0..40 {
        let mut metadata = with_servers();
        let mut dirs = Vec::new();
        for idx in 0..rng.below(60) {
            let depth = 1 + rng.below(3);
            let path: Vec<&str> = (0..depth).map(|_| *rng.pick(&parts)).collect();
            let path = path.join("/");
            if rng.chance(20) {
                let dir = format!("{path}/");
                if metadata
                    .apply(&Change::MakeDir { path: dir.clone() })
                    .is_ok()
                {
                    dirs.push(dir);
                }
            } else {
                let _ = metadata.apply(&commit(&path, version(idx + 1, 10), false));
            }
        }
        for prefix in ["", "a/", "a/b/", "z/", "none/"] {
            let expected = level_model(&metadata, &dirs, prefix);
            let limit = 1 + rng.below(5) as usize;
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            for _ in 0..1000 {
                let level = metadata.list_level(prefix, after.as_deref(), limit);
                assert!(level.files.len() + level.dirs.len() <= limit);
                let mut page: Vec<String> = level
                    .files
                    .iter()
                    .map(|file| file.name.clone())
                    .chain(level.dirs.iter().cloned())
                    .collect();
                page.sort();
                seen.extend(page);
                match level.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(
                seen, expected,
                "round {round}, prefix {prefix:?}, limit {limit}"
            );
        }
    }
}

#[test]
fn directories_are_made_once_removed_when_empty_and_kept_by_snapshots() {
    let mut metadata = with_servers();
    let make = |path: &str| Change::MakeDir {
        path: path.to_owned(),
    };
    let remove = |path: &str| Change::RemoveDir {
        path: path.to_owned(),
        even_if_not_empty: false,
    };
    assert_eq!(metadata.apply(&make("d/")), Ok(Applied::Changed));
    assert_eq!(metadata.apply(&make("d/")), Err(Refusal::NameTaken));
    metadata
        .apply(&commit("f/x", version(1, 1), false))
        .unwrap();
    metadata.apply(&commit("g", version(2, 1), false)).unwrap();
    assert_eq!(
        metadata.apply(&make("f/")),
        Err(Refusal::NameTaken),
        "implicit"
    );
    assert_eq!(
        metadata.apply(&make("g/")),
        Err(Refusal::NameTaken),
        "a file's name"
    );
    assert!(matches!(
        metadata.apply(&make("bad")),
        Err(Refusal::Invalid(_))
    ));
    assert_eq!(metadata.apply(&make("d/e/")), Ok(Applied::Changed));
    assert_eq!(metadata.apply(&remove("d/")), Err(Refusal::NotEmpty));
    assert_eq!(metadata.apply(&remove("f/")), Err(Refusal::NotEmpty));
    assert_eq!(metadata.apply(&remove("nope/")), Err(Refusal::NoSuchFile));
    // A snapshot rebuilds them.
    let mut rebuilt = Metadata::default();
    for change in metadata.snapshot() {
        rebuilt.apply(&change).unwrap();
    }
    assert!(rebuilt.dir_exists("d/e/"));
    // A directory rename moves the explicit ones too.
    let moved = Change::RenamePrefix {
        from: "d/".to_owned(),
        to: "h/".to_owned(),
    };
    assert_eq!(
        metadata.apply(&moved),
        Ok(Applied::RenamedPrefix { count: 0 })
    );
    assert!(metadata.dir_exists("h/e/") && !metadata.dir_exists("d/"));
    assert_eq!(metadata.apply(&remove("h/e/")), Ok(Applied::Changed));
    assert_eq!(metadata.apply(&remove("h/")), Ok(Applied::Changed));
}

/// Applies `change`; if accepted, puts back what it touched as it was
/// before and checks that this restores the state exactly, then applies it
/// again. What a store does when its write is not accepted.
fn apply_undo_redo(metadata: &mut Metadata, change: &Change) -> Result<Applied, Refusal> {
    let before_snapshot = metadata.snapshot();
    let touched = metadata.touched(change);
    let before: Vec<_> = touched
        .iter()
        .map(|entity| (entity.clone(), metadata.entity(entity)))
        .collect();
    let outcome = metadata.apply(change);
    if outcome.is_err() {
        assert_eq!(
            metadata.snapshot(),
            before_snapshot,
            "a refusal changed {change:?}"
        );
        return outcome;
    }
    let after_snapshot = metadata.snapshot();
    let after: Vec<_> = touched
        .iter()
        .map(|entity| (entity.clone(), metadata.entity(entity)))
        .collect();
    metadata.replace(before).unwrap();
    metadata.check_invariants().unwrap();
    assert_eq!(metadata.snapshot(), before_snapshot, "undo of {change:?}");
    // A store that follows another's change puts back the values after.
    metadata.replace(after).unwrap();
    metadata.check_invariants().unwrap();
    assert_eq!(metadata.snapshot(), after_snapshot, "redo of {change:?}");
    outcome
}

#[test]
fn putting_back_what_a_change_touched_undoes_or_redoes_it_exactly() {
    for seed in 0..20 {
        let mut rng = Rng::new(2000 + seed);
        let mut metadata = Metadata::default();
        let mut model = Model::default();
        for _ in 0..200 {
            let (change, _) = step(&mut rng, &mut model);
            let _ = apply_undo_redo(&mut metadata, &change);
        }
    }
    let mut metadata = with_servers();
    let object = Box::new(crate::metadata::version::ObjectMeta {
        md5: [0; 16],
        parts_count: 0,
        content_type: None,
        user: Box::new([]),
    });
    let part = |blob: u64| crate::metadata::uploads::Part {
        piece: version(blob, 3000).pieces[0].clone(),
        md5: [blob as u8; 16],
        mtime_ms: 1,
    };
    let changes = [
        commit("a/x", version(1, 3000), false),
        commit("a/y", version(2, 10), false),
        Change::MakeDir {
            path: "a/sub/".to_owned(),
        },
        commit("a/x", version(3, 5), true),
        rename("a/x", "a/y", true),
        Change::RenamePrefix {
            from: "a/".to_owned(),
            to: "b/".to_owned(),
        },
        Change::RemoveDir {
            path: "b/sub/".to_owned(),
            even_if_not_empty: false,
        },
        Change::Delete { name: name("b/y") },
        Change::BeginUpload {
            id: 10,
            name: name("b/big"),
            started_ms: 5,
            object: object.clone(),
        },
        Change::AddPart {
            upload: 10,
            number: 1,
            part: part(11),
        },
        Change::AddPart {
            upload: 10,
            number: 2,
            part: part(12),
        },
        Change::AddPart {
            upload: 10,
            number: 2,
            part: part(13),
        },
        Change::Relocate {
            blob: BlobId(13),
            first_index: 0,
            count: 1,
            replicas: vec![2],
        },
        Change::CompleteUpload {
            upload: 10,
            parts: vec![(2, [13; 16])],
            md5: [0; 16],
            mtime_ms: 6,
        },
        Change::BeginUpload {
            id: 20,
            name: name("b/gone"),
            started_ms: 5,
            object,
        },
        Change::AddPart {
            upload: 20,
            number: 7,
            part: part(21),
        },
        Change::AbortUpload { upload: 20 },
        Change::Drain { id: 1 },
        Change::AddServer {
            id: 3,
            url: "http://d:4".to_owned(),
        },
        Change::ReserveBlobs { up_to: 5000 },
    ];
    for change in &changes {
        let outcome = apply_undo_redo(&mut metadata, change);
        assert!(outcome.is_ok(), "{change:?}: {outcome:?}");
    }
}

#[test]
fn the_whole_state_is_rebuilt_from_its_entities() {
    for seed in 0..10 {
        let mut rng = Rng::new(3000 + seed);
        let mut metadata = Metadata::default();
        let mut model = Model::default();
        for _ in 0..200 {
            let (change, _) = step(&mut rng, &mut model);
            let _ = metadata.apply(&change);
        }
        // In reverse: `replace` puts entities in their order itself.
        let group = metadata
            .entities()
            .into_iter()
            .rev()
            .map(|entity| {
                let value = metadata.entity(&entity);
                assert!(value.is_some(), "{entity:?} is listed but has no value");
                (entity, value)
            })
            .collect();
        let mut rebuilt = Metadata::default();
        rebuilt.replace(group).unwrap();
        rebuilt.check_invariants().unwrap();
        assert_eq!(rebuilt.snapshot(), metadata.snapshot());
    }
}
