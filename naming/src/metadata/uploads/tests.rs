#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use common::chunk::BlobId;
use common::name::FileName;

use crate::journal::record::{self, Record};
use crate::metadata::Metadata;
use crate::metadata::change::{Applied, Change, Refusal};
use crate::metadata::uploads::Part;
use crate::metadata::version::{
    FileVersion, ObjectMeta, Piece, ServerId, chunks_for_size, push_run,
};

fn name(text: &str) -> FileName {
    FileName::parse(text).unwrap()
}

fn piece(blob: u64, size_bytes: u64, replicas: &[ServerId]) -> Piece {
    let mut runs = Vec::new();
    let chunks = chunks_for_size(size_bytes) as u32;
    if chunks > 0 {
        push_run(&mut runs, chunks, replicas);
    }
    Piece {
        blob: BlobId(blob),
        size_bytes,
        runs,
    }
}

fn meta() -> Box<ObjectMeta> {
    Box::new(ObjectMeta {
        md5: [0; 16],
        parts_count: 0,
        content_type: Some("text/x-parts".into()),
        user: vec![("who".into(), "test".into())].into(),
    })
}

/// Three servers, blobs below 1000 reserved, and upload 7 of `b/k` begun.
fn with_upload() -> Metadata {
    let mut metadata = Metadata::default();
    for (id, url) in ["http://a:1", "http://b:2", "http://c:3"]
        .iter()
        .enumerate()
    {
        let add = Change::AddServer {
            id: id as ServerId,
            url: url.to_string(),
        };
        metadata.apply(&add).unwrap();
    }
    metadata
        .apply(&Change::ReserveBlobs { up_to: 1000 })
        .unwrap();
    let begin = Change::BeginUpload {
        id: 7,
        name: name("b/k"),
        started_ms: 1_000,
        object: meta(),
    };
    assert_eq!(metadata.apply(&begin), Ok(Applied::Changed));
    metadata
}

fn add(number: u32, blob: u64, size_bytes: u64, md5: u8) -> Change {
    Change::AddPart {
        upload: 7,
        number,
        part: Part {
            piece: piece(blob, size_bytes, &[0, 1]),
            md5: [md5; 16],
            mtime_ms: 2_000,
        },
    }
}

fn complete(parts: &[(u32, u8)]) -> Change {
    Change::CompleteUpload {
        upload: 7,
        parts: parts.iter().map(|&(n, md5)| (n, [md5; 16])).collect(),
        md5: [0xee; 16],
        mtime_ms: 3_000,
    }
}

#[test]
fn completing_makes_the_listed_parts_the_pieces_of_one_version() {
    let mut metadata = with_upload();
    metadata.apply(&add(1, 10, 5 * 1024 * 1024 + 7, 1)).unwrap();
    metadata.apply(&add(2, 11, 4000, 2)).unwrap();
    metadata.apply(&add(3, 12, 10, 3)).unwrap();
    metadata.check_invariants().unwrap();
    // Under way: no file, but the parts' pieces are stored and found.
    assert!(metadata.get(&name("b/k")).is_none());
    assert_eq!(metadata.pieces().count(), 3);
    assert_eq!(metadata.piece_of(BlobId(11)).unwrap().size_bytes, 4000);
    let applied = metadata.apply(&complete(&[(1, 1), (3, 3)])).unwrap();
    let Applied::Completed { replaced, unused } = applied else {
        panic!("{applied:?}");
    };
    assert!(replaced.is_none());
    assert_eq!(
        unused.iter().map(|p| p.blob).collect::<Vec<_>>(),
        [BlobId(11)]
    );
    let version = metadata.get(&name("b/k")).unwrap();
    assert_eq!(
        version.blobs().collect::<Vec<_>>(),
        [BlobId(10), BlobId(12)]
    );
    assert_eq!(version.size_bytes, 5 * 1024 * 1024 + 17);
    assert_eq!(version.mtime_ms, 3_000);
    let object = version.object.as_ref().unwrap();
    assert_eq!((object.md5, object.parts_count), ([0xee; 16], 2));
    assert_eq!(object.content_type.as_deref(), Some("text/x-parts"));
    assert_eq!(version.piece_at(5 * 1024 * 1024 + 6), (0, 0));
    assert_eq!(
        version.piece_at(5 * 1024 * 1024 + 7),
        (1, 5 * 1024 * 1024 + 7)
    );
    assert!(metadata.upload(7).is_none() && metadata.piece_of(BlobId(11)).is_none());
    assert_eq!(metadata.chunks_count(), version.chunks_count());
    metadata.check_invariants().unwrap();
    // Its pieces are relocated like any file's; deleting it drops them.
    let relocate = Change::Relocate {
        blob: BlobId(12),
        first_index: 0,
        count: 1,
        replicas: vec![2, 1],
    };
    metadata.apply(&relocate).unwrap();
    let moved = metadata.get(&name("b/k")).unwrap();
    assert_eq!(*moved.pieces[1].runs[0].replicas, [2, 1]);
    assert_eq!(moved.pieces[0], version.pieces[0]);
    metadata
        .apply(&Change::Delete { name: name("b/k") })
        .unwrap();
    assert!(metadata.piece_of(BlobId(10)).is_none());
    assert_eq!(metadata.chunks_count(), 0);
    metadata.check_invariants().unwrap();
}

#[test]
fn a_completion_of_parts_not_stored_as_listed_is_refused_and_changes_nothing() {
    let mut metadata = with_upload();
    metadata.apply(&add(1, 10, 100, 1)).unwrap();
    let before = metadata.snapshot();
    assert_eq!(
        metadata.apply(&complete(&[(1, 9)])),
        Err(Refusal::InvalidPart { number: 1 })
    );
    assert_eq!(
        metadata.apply(&complete(&[(1, 1), (2, 2)])),
        Err(Refusal::InvalidPart { number: 2 })
    );
    assert!(matches!(
        metadata.apply(&complete(&[])),
        Err(Refusal::Invalid(_))
    ));
    assert_eq!(metadata.snapshot(), before);
    let other = Change::CompleteUpload {
        upload: 8,
        parts: vec![(1, [1; 16])],
        md5: [0; 16],
        mtime_ms: 0,
    };
    assert_eq!(metadata.apply(&other), Err(Refusal::NoSuchUpload));
    metadata.check_invariants().unwrap();
}

#[test]
fn a_part_sent_again_replaces_the_first_and_blobs_stay_one_holders() {
    let mut metadata = with_upload();
    metadata.apply(&add(1, 10, 100, 1)).unwrap();
    let again = metadata.apply(&add(1, 11, 200, 2)).unwrap();
    assert!(matches!(again, Applied::PartAdded { replaced: Some(old) } if old.blob == BlobId(10)));
    assert!(metadata.piece_of(BlobId(10)).is_none());
    // A blob another part (or file) holds is never taken.
    assert!(matches!(
        metadata.apply(&add(2, 11, 200, 2)),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        metadata.apply(&add(0, 12, 1, 1)),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        metadata.apply(&add(2, 5000, 1, 1)),
        Err(Refusal::Invalid(_))
    ));
    let commit = Change::Commit {
        name: name("b/other"),
        version: Arc::new(FileVersion::whole(piece(11, 200, &[0, 1]), 0, None)),
        overwrite: true,
    };
    assert!(matches!(metadata.apply(&commit), Err(Refusal::Invalid(_))));
    metadata.check_invariants().unwrap();
}

#[test]
fn an_aborted_upload_gives_back_its_pieces_and_takes_no_more_parts() {
    let mut metadata = with_upload();
    metadata.apply(&add(1, 10, 100, 1)).unwrap();
    metadata.apply(&add(2, 11, 100, 2)).unwrap();
    let aborted = metadata.apply(&Change::AbortUpload { upload: 7 }).unwrap();
    let Applied::Aborted { pieces } = aborted else {
        panic!("{aborted:?}");
    };
    assert_eq!(pieces.len(), 2);
    assert_eq!(metadata.pieces().count(), 0);
    assert_eq!(
        metadata.apply(&add(3, 12, 1, 3)),
        Err(Refusal::NoSuchUpload)
    );
    assert_eq!(
        metadata.apply(&Change::AbortUpload { upload: 7 }),
        Err(Refusal::NoSuchUpload)
    );
    let relocate = Change::Relocate {
        blob: BlobId(10),
        first_index: 0,
        count: 1,
        replicas: vec![2, 1],
    };
    assert_eq!(metadata.apply(&relocate), Err(Refusal::BlobGone));
    metadata.check_invariants().unwrap();
}

#[test]
fn uploads_under_way_survive_a_snapshot_through_the_journal_codec() {
    let mut metadata = with_upload();
    metadata.apply(&add(1, 10, 5000, 1)).unwrap();
    metadata.apply(&add(4, 11, 1, 4)).unwrap();
    let relocate = Change::Relocate {
        blob: BlobId(10),
        first_index: 2,
        count: 2,
        replicas: vec![2, 0],
    };
    metadata.apply(&relocate).unwrap();
    let mut rebuilt = Metadata::default();
    for change in metadata.snapshot() {
        let bytes = record::frame(&Record::Change(change));
        let payload = record::read_frame(&mut &bytes[..]).unwrap().unwrap();
        let Record::Change(decoded) = record::parse(&payload).unwrap() else {
            panic!("a change decodes as a change");
        };
        rebuilt.apply(&decoded).unwrap();
    }
    rebuilt.check_invariants().unwrap();
    assert_eq!(rebuilt.upload(7), metadata.upload(7));
    assert_eq!(rebuilt.snapshot(), metadata.snapshot());
}
