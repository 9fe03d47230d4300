#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::sync::Arc;

use common::chunk::{BlobId, ChunkId};
use common::wire::Chunk;

use common::wire::{self, BLOB_ENTRY_BYTES};

use super::BlobListing;
use crate::limits::BLOB_LISTING_PAGE_BLOBS_MAX;
use crate::store::Store;
use crate::test_support::{chunks, temp_dir};

fn encode_blob_entry(blob: BlobId, chunks_count: u64) -> Vec<u8> {
    let mut entry = Vec::new();
    wire::put_blob_entry(&mut entry, blob, chunks_count);
    entry
}

#[test]
fn a_blob_entry_is_its_id_and_chunk_count_big_endian() {
    let entry = encode_blob_entry(BlobId(0x0102_0304_0506_0708), 0x0a0b_0c0d);
    assert_eq!(entry, [1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d]);
    let entry: [u8; BLOB_ENTRY_BYTES] = entry.try_into().unwrap();
    assert_eq!(
        wire::decode_blob_entry(&entry),
        (BlobId(0x0102_0304_0506_0708), 0x0a0b_0c0d)
    );
    assert_eq!(
        encode_blob_entry(BlobId(u64::MAX), 1 << 32),
        [0xff; BLOB_ENTRY_BYTES],
        "a count past u32::MAX is sent as u32::MAX"
    );
}

#[test]
fn the_listing_streams_every_blob_in_order_across_pages() {
    let dir = temp_dir();
    let (store, _) = Store::open(&dir, None).unwrap();
    let blobs_count = BLOB_LISTING_PAGE_BLOBS_MAX as u64 * 2 + 5;
    // One-chunk blobs, 256 a batch, ids in an order unlike their sort.
    let ids: Vec<u64> = (0..blobs_count)
        .map(|n| (n * 7919) % blobs_count + 1)
        .collect();
    for batch in ids.chunks(256) {
        let chunks: Vec<Chunk> = batch
            .iter()
            .map(|&blob| {
                Chunk::new(
                    ChunkId {
                        blob: BlobId(blob),
                        index: 0,
                    },
                    vec![1],
                )
            })
            .collect();
        store.put_chunks(&chunks).unwrap();
    }
    store
        .put_chunks(&chunks(blobs_count / 2, &[1024; 3]))
        .unwrap();
    store.delete_blob(BlobId(3)).unwrap();

    let mut body = Vec::new();
    BlobListing::new(Arc::new(store))
        .read_to_end(&mut body)
        .unwrap();

    let expected: Vec<u8> = (1..=blobs_count)
        .filter(|&blob| blob != 3)
        .flat_map(|blob| {
            let count = if blob == blobs_count / 2 { 3 } else { 1 };
            encode_blob_entry(BlobId(blob), count)
        })
        .collect();
    assert_eq!(body.len(), expected.len());
    assert!(body == expected);
    fs::remove_dir_all(dir).unwrap();
}
