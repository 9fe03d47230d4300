#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use common::chunk::BlobId;
use common::name::FileName;

use super::{FrameError, Record, frame, parse, read_frame};
use crate::metadata::change::Change;
use crate::metadata::uploads::Part;
use crate::metadata::version::{FileVersion, ObjectMeta, Piece, push_run};

fn piece(blob: u64, size_bytes: u64) -> Piece {
    let mut runs = Vec::new();
    let chunks = size_bytes.div_ceil(1024) as u32;
    if chunks > 0 {
        push_run(&mut runs, chunks, &[1, 0]);
    }
    Piece {
        blob: BlobId(blob),
        size_bytes,
        runs,
    }
}

fn object() -> ObjectMeta {
    ObjectMeta {
        md5: [0; 16],
        parts_count: 0,
        content_type: None,
        user: vec![("k".into(), "v".into())].into(),
    }
}

fn records() -> Vec<Record> {
    let mut runs = Vec::new();
    push_run(&mut runs, 256, &[0, 1]);
    push_run(&mut runs, 3, &[2, 0]);
    let version = FileVersion::whole(
        Piece {
            blob: BlobId(77),
            size_bytes: 258 * 1024 + 5,
            runs,
        },
        1_796_198_221_123,
        None,
    );
    let changes = vec![
        Change::AddServer {
            id: 2,
            url: "http://127.0.0.1:8003".to_owned(),
        },
        Change::ReserveBlobs { up_to: 1 << 20 },
        Change::Commit {
            name: FileName::parse("dir/ü b").unwrap(),
            version: Arc::new(version),
            overwrite: true,
        },
        Change::Commit {
            name: FileName::parse("empty").unwrap(),
            version: Arc::new(FileVersion::whole(
                Piece {
                    blob: BlobId(78),
                    size_bytes: 0,
                    runs: Vec::new(),
                },
                1_796_198_221_123,
                Some(Box::new(ObjectMeta {
                    md5: [0xd4; 16],
                    parts_count: 3,
                    content_type: Some("text/plain; charset=utf-8".into()),
                    user: vec![
                        ("mtime".into(), "1796198221.5".into()),
                        ("ü".into(), "".into()),
                    ]
                    .into(),
                })),
            )),
            overwrite: true,
        },
        Change::Commit {
            name: FileName::parse("big/multi").unwrap(),
            version: Arc::new(FileVersion {
                pieces: vec![piece(90, 5 * 1024 * 1024 + 3), piece(91, 0), piece(92, 7)].into(),
                size_bytes: 5 * 1024 * 1024 + 10,
                mtime_ms: 1_796_198_221_124,
                object: Some(Box::new(object())),
            }),
            overwrite: true,
        },
        Change::BeginUpload {
            id: 93,
            name: FileName::parse("bucket/key").unwrap(),
            started_ms: 1_796_198_221_125,
            object: Box::new(object()),
        },
        Change::AddPart {
            upload: 93,
            number: 10_000,
            part: Part {
                piece: piece(94, 3000),
                md5: [7; 16],
                mtime_ms: 1_796_198_221_126,
            },
        },
        Change::CompleteUpload {
            upload: 93,
            parts: vec![(1, [1; 16]), (3, [3; 16])],
            md5: [9; 16],
            mtime_ms: 1_796_198_221_127,
        },
        Change::AbortUpload { upload: 93 },
        Change::Delete {
            name: FileName::parse("dir/ü b").unwrap(),
        },
        Change::Relocate {
            blob: BlobId(78),
            first_index: 3,
            count: 2,
            replicas: vec![2, 1],
        },
        Change::Drain { id: 1 },
    ];
    let mut records: Vec<Record> = changes.into_iter().map(Record::Change).collect();
    records.push(Record::End { records_count: 12 });
    records
}

#[test]
fn every_record_round_trips_through_its_frame() {
    let bytes: Vec<u8> = records().iter().flat_map(frame).collect();
    let mut reader = &bytes[..];
    for expected in records() {
        let payload = read_frame(&mut reader).unwrap().unwrap();
        assert_eq!(parse(&payload).unwrap(), expected);
    }
    assert!(read_frame(&mut reader).unwrap().is_none());
}

#[test]
fn the_format_of_a_record_is_what_older_journals_hold() {
    // Drain of server 1 and a reservation, as every release has written them.
    let drain = frame(&Record::Change(Change::Drain { id: 1 }));
    assert_eq!(drain[8..], [7, 0, 1]);
    let reserve = frame(&Record::Change(Change::ReserveBlobs { up_to: 0x0102 }));
    assert_eq!(reserve[8..], [3, 0, 0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(reserve[..4], [0, 0, 0, 9]);
}

#[test]
fn a_commit_of_the_journals_before_times_reads_with_mtime_0() {
    // Kind 1: name "a", blob 9, 5 bytes, one run of chunk 0 on server 3.
    let mut payload = vec![1, 0, 1, b'a'];
    payload.extend_from_slice(&9u64.to_be_bytes());
    payload.extend_from_slice(&5u64.to_be_bytes());
    payload.extend_from_slice(&1u32.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(&1u32.to_be_bytes());
    payload.extend_from_slice(&[1, 0, 3]);
    let Ok(Record::Change(Change::Commit { version, .. })) = parse(&payload) else {
        panic!("an old commit no longer parses");
    };
    assert_eq!((version.size_bytes, version.mtime_ms), (5, 0));
    // Commits are written with their time (kind 8) from now on.
    let written = frame(&Record::Change(Change::Commit {
        name: FileName::parse("a").unwrap(),
        version,
        overwrite: true,
    }));
    assert_eq!(written[8], 8);
}

#[test]
fn a_cut_or_flipped_frame_is_torn_never_a_record() {
    let frame = frame(&records()[2]);
    for cut in 1..frame.len() {
        assert!(
            matches!(read_frame(&mut &frame[..cut]), Err(FrameError::Torn)),
            "cut at {cut}"
        );
    }
    for at in 0..frame.len() {
        let mut flipped = frame.clone();
        flipped[at] ^= 0x10;
        match read_frame(&mut &flipped[..]) {
            Err(FrameError::Torn) => {}
            Ok(Some(payload)) => panic!("flip at {at} read as {:?}", parse(&payload)),
            other => panic!("flip at {at}: {other:?}"),
        }
    }
}

#[test]
fn a_checksummed_payload_that_makes_no_sense_is_malformed() {
    for payload in [
        &[9u8][..],
        &[1, 0, 1],
        &[2, 0, 1, b'/'],
        &[3, 0, 0],
        &[7, 0, 1, 0],
        &[6, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
    ] {
        assert!(
            matches!(parse(payload), Err(FrameError::Malformed(_))),
            "{payload:?}"
        );
    }
}

/// Frames of every kind of record, mutated at random (fixed seed): read
/// back, each is torn, malformed or a record that frames to the same bytes;
/// never a panic.
#[test]
fn mutated_frames_are_torn_malformed_or_exactly_a_record() {
    let mut rng = common::rng::Rng::new(0x0f4a_e5ed);
    let records = records();
    for _ in 0..5000 {
        let mut bytes = frame(rng.pick(&records));
        match rng.below(3) {
            0 => {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(rng.below(bytes.len() as u64) as usize),
            _ => {
                let at = rng.below(bytes.len() as u64) as usize;
                let len = (rng.below(8) as usize).min(bytes.len() - at);
                rng.fill(&mut bytes[at..at + len]);
            }
        }
        let mut reader = &bytes[..];
        if let Ok(Some(payload)) = read_frame(&mut reader)
            && let Ok(record) = parse(&payload)
        {
            assert_eq!(frame(&record), bytes[..bytes.len() - reader.len()]);
        }
    }
}
