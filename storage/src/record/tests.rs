#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::{self, Write};

use common::chunk::{BlobId, ChunkId, crc32c};

use super::{
    Kind, Parse, Piece, RECORD_HEADER_BYTES, RecordAt, SCAN_PIECE_BYTES, SEGMENT_MAGIC,
    SEGMENT_MAGIC_BYTES, ScanEnd, Visitor, encode_chunk, encode_tombstone, parse_at, scan,
    verify_run,
};
use crate::test_support::temp_dir;

fn id(blob: u64, index: u32) -> ChunkId {
    ChunkId {
        blob: BlobId(blob),
        index,
    }
}

fn chunk_record(blob: u64, index: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_chunk(&mut out, id(blob, index), crc32c(data), data);
    out
}

/// Collects every record the scanner hands out, with its data's state.
#[derive(Default)]
struct Collect {
    records: Vec<(RecordAt, bool)>,
    pieces: usize,
}

impl Visitor for Collect {
    fn visit(&mut self, piece: &Piece<'_>) -> io::Result<()> {
        self.pieces += 1;
        for record in &piece.records {
            assert_eq!(
                piece.record_bytes(record).len() as u64,
                record.record_bytes()
            );
            self.records.push((*record, piece.data_intact(record)));
        }
        Ok(())
    }
}

fn segment_file(bytes: &[u8]) -> (File, u64) {
    let dir = temp_dir();
    let path = dir.join("segment");
    let mut file = File::create(&path).unwrap();
    file.write_all(&SEGMENT_MAGIC).unwrap();
    file.write_all(bytes).unwrap();
    drop(file);
    let file = File::open(&path).unwrap();
    fs::remove_dir_all(dir).unwrap();
    let len = file.metadata().unwrap().len();
    (file, len)
}

#[test]
fn records_round_trip_and_their_format_is_fixed() {
    let mut bytes = chunk_record(0x0102, 7, b"hello");
    encode_tombstone(&mut bytes, BlobId(0x0102));
    // kind | 3 zero bytes | blob u64 | index u32 | len u32, big-endian.
    assert_eq!(
        bytes[..20],
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 7, 0, 0, 0, 5]
    );
    let Parse::Record(chunk) = parse_at(&bytes, 0, 100) else {
        panic!("a chunk record")
    };
    assert_eq!(
        (chunk.offset, chunk.kind, chunk.id, chunk.len),
        (100, Kind::Chunk, id(0x0102, 7), 5)
    );
    assert_eq!(chunk.data_crc, crc32c(b"hello"));
    let at = chunk.record_bytes() as usize;
    let Parse::Record(tombstone) = parse_at(&bytes, at, 100) else {
        panic!("a tombstone")
    };
    assert_eq!((tombstone.kind, tombstone.len), (Kind::Tombstone, 0));
    assert_eq!(tombstone.end(), 100 + bytes.len() as u64);
}

#[test]
fn a_cut_record_is_cut_and_a_flipped_header_is_damaged() {
    let record = chunk_record(1, 0, &[9; 1024]);
    for cut in 0..record.len() {
        assert_eq!(parse_at(&record[..cut], 0, 0), Parse::Cut, "cut at {cut}");
    }
    for at in 0..RECORD_HEADER_BYTES {
        let mut flipped = record.clone();
        flipped[at] ^= 0x04;
        assert_eq!(parse_at(&flipped, 0, 0), Parse::Damaged, "flip at {at}");
    }
}

#[test]
fn a_scan_visits_every_record_across_pieces_and_says_how_it_ended() {
    // More than one piece of records, one with rotten data, then a torn tail.
    let mut bytes = Vec::new();
    let mut index = 0;
    while bytes.len() < SCAN_PIECE_BYTES + 5000 {
        bytes.extend(chunk_record(3, index, &[index as u8; 1024]));
        index += 1;
    }
    let rotten_at = RECORD_HEADER_BYTES + 10;
    bytes[rotten_at] ^= 1;
    let whole = bytes.len() as u64;
    bytes.extend(&chunk_record(4, 0, b"torn")[..20]);
    let (file, len) = segment_file(&bytes);
    let mut collect = Collect::default();
    let (valid_len, end) = scan(&file, len, &mut collect).unwrap();
    assert_eq!(valid_len, SEGMENT_MAGIC_BYTES + whole);
    assert_eq!(end, ScanEnd::Cut { offset: valid_len });
    assert_eq!(collect.records.len(), index as usize);
    assert!(collect.pieces >= 2);
    let intact: Vec<bool> = collect.records.iter().map(|(_, intact)| *intact).collect();
    assert!(!intact[0] && intact[1..].iter().all(|&ok| ok));
    for (k, (record, _)) in collect.records.iter().enumerate() {
        assert_eq!(record.id, id(3, k as u32));
    }
}

#[test]
fn a_scan_stops_at_a_damaged_header_and_at_a_missing_magic() {
    let mut bytes = chunk_record(1, 0, b"a");
    let second = bytes.len();
    bytes.extend(chunk_record(1, 1, b"b"));
    bytes.extend(chunk_record(1, 2, b"c"));
    bytes[second + 2] = 9;
    let (file, len) = segment_file(&bytes);
    let mut collect = Collect::default();
    let (valid_len, end) = scan(&file, len, &mut collect).unwrap();
    assert_eq!(valid_len, SEGMENT_MAGIC_BYTES + second as u64);
    assert_eq!(end, ScanEnd::Damaged { offset: valid_len });
    assert_eq!(collect.records.len(), 1);
    let dir = temp_dir();
    let path = dir.join("headless");
    fs::write(&path, b"HRBSEG0").unwrap();
    let file = File::open(&path).unwrap();
    assert_eq!(
        scan(&file, 7, &mut Collect::default()).unwrap(),
        (0, ScanEnd::NoMagic)
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn verifying_a_run_names_exactly_the_chunks_that_fail() {
    let mut bytes = Vec::new();
    for index in 0..4 {
        let len = if index == 3 { 10 } else { 1024 };
        bytes.extend(chunk_record(5, 20 + index, &vec![index as u8; len]));
    }
    let verified = verify_run(&bytes, 0, (BlobId(5), 20), 4, 10);
    assert!(verified.iter().all(Result::is_ok));
    assert_eq!(verified[3].as_ref().unwrap().data(), vec![3; 10]);
    // Rotten data in chunk 21, a header of another chunk where 22 should be.
    let stride = RECORD_HEADER_BYTES + 1024;
    bytes[stride + RECORD_HEADER_BYTES + 5] ^= 1;
    let other = chunk_record(6, 22, &[2; 1024]);
    bytes[2 * stride..3 * stride].copy_from_slice(&other);
    let failed: Vec<ChunkId> = verify_run(&bytes, 0, (BlobId(5), 20), 4, 10)
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert_eq!(failed, [id(5, 21), id(5, 22)]);
    // A last chunk of another length than the index says fails too.
    assert!(verify_run(&bytes, 0, (BlobId(5), 20), 4, 11)[3].is_err());
}

/// Segments of valid records mutated at random (fixed seed): the scan never
/// panics, never claims more than the file holds, and hands out only
/// records that lie whole inside what it calls readable.
#[test]
fn mutated_segments_scan_without_a_panic_and_within_the_file() {
    let mut rng = common::rng::Rng::new(0x5e6_5ca2);
    for _ in 0..300 {
        // After the magic, which `segment_file` writes.
        let mut bytes = Vec::new();
        for index in 0..1 + rng.below(6) as u32 {
            let len = rng.below(1025) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            bytes.extend(chunk_record(rng.below(3), index, &data));
            if rng.chance(20) {
                let mut tombstone = Vec::new();
                encode_tombstone(&mut tombstone, BlobId(rng.below(3)));
                bytes.extend(tombstone);
            }
        }
        for _ in 0..=rng.below(3) {
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes.truncate(at.max(1)),
                _ => {
                    let end = (at + 8).min(bytes.len());
                    rng.fill(&mut bytes[at..end]);
                }
            }
        }
        let (file, len) = segment_file(&bytes);
        let mut collect = Collect::default();
        let (valid_len, _end) = scan(&file, len, &mut collect).unwrap();
        assert!(valid_len <= len);
        for (record, _) in &collect.records {
            assert!(record.offset + record.record_bytes() <= valid_len);
        }
    }
}
