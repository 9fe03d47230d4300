#![allow(clippy::unwrap_used)]

use super::{Chunk, WireError, decode_batch, decode_batch_from, encode_batch};
use crate::chunk::{BlobId, ChunkId};
use crate::limits::{BATCH_CHUNKS_MAX, BATCH_HEADER_BYTES, CHUNK_SIZE_BYTES, FRAME_HEADER_BYTES};

fn chunk(index: u32, len: usize) -> Chunk {
    let data = (0..len).map(|i| (i as u32 ^ index) as u8).collect();
    Chunk::new(
        ChunkId {
            blob: BlobId(0xfeed),
            index,
        },
        data,
    )
}

#[test]
fn round_trips_sizes_at_the_chunk_boundaries() {
    let chunks: Vec<Chunk> = [0, 1, 1023, 1024]
        .iter()
        .enumerate()
        .map(|(i, &len)| chunk(i as u32, len))
        .collect();
    let bytes = encode_batch(&chunks);
    assert_eq!(
        bytes.len(),
        BATCH_HEADER_BYTES + 4 * FRAME_HEADER_BYTES + 1 + 1023 + 1024
    );
    assert_eq!(decode_batch(&mut &bytes[..]).unwrap(), chunks);
    assert_eq!(decode_batch(&mut &encode_batch(&[])[..]).unwrap(), vec![]);
}

#[test]
fn refuses_every_kind_of_damage() {
    let bytes = encode_batch(&[chunk(0, 1024), chunk(1, 5)]);
    let decode = |bytes: &[u8]| decode_batch(&mut &bytes[..]).unwrap_err();

    assert!(matches!(
        decode(&bytes[..bytes.len() - 1]),
        WireError::Truncated
    ));
    assert!(matches!(decode(&bytes[..3]), WireError::Truncated));
    assert!(matches!(
        decode(&[&bytes[..], b"x"].concat()),
        WireError::TrailingBytes
    ));

    let mut flipped = bytes.clone();
    flipped[BATCH_HEADER_BYTES + FRAME_HEADER_BYTES + 100] ^= 1;
    assert!(matches!(decode(&flipped), WireError::ChecksumMismatch { id } if id.index == 0));

    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(decode(&magic), WireError::BadMagic));

    let mut version = bytes.clone();
    version[4] = 9;
    assert!(matches!(decode(&version), WireError::UnsupportedVersion(9)));

    let mut count = bytes.clone();
    count[8..12].copy_from_slice(&(BATCH_CHUNKS_MAX as u32 + 1).to_be_bytes());
    assert!(matches!(decode(&count), WireError::TooManyChunks { .. }));

    let mut len = bytes.clone();
    len[BATCH_HEADER_BYTES + 12..BATCH_HEADER_BYTES + 16]
        .copy_from_slice(&(CHUNK_SIZE_BYTES as u32 + 1).to_be_bytes());
    assert!(matches!(decode(&len), WireError::ChunkTooLarge { .. }));
}

#[test]
fn the_streaming_decoder_agrees_with_the_whole_batch_decoder_read_in_any_pieces() {
    let chunks: Vec<Chunk> = (0..300)
        .map(|i| chunk(i, (i as usize * 37) % 1025))
        .collect();
    let bytes = encode_batch(&chunks);
    // A reader that hands out 1, 7 or 1000 bytes at a time.
    struct Trickle<'a>(&'a [u8], usize);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let len = self.1.min(out.len()).min(self.0.len());
            out[..len].copy_from_slice(&self.0[..len]);
            self.0 = &self.0[len..];
            Ok(len)
        }
    }
    for step in [1, 7, 1000, 1 << 20] {
        let mut seen = Vec::new();
        let count = super::decode_batch_from(&mut Trickle(&bytes, step), &mut |chunk| {
            seen.push(chunk.to_owned())
        })
        .unwrap();
        assert_eq!(count, 300);
        assert_eq!(seen, chunks, "pieces of {step}");
    }
    let whole = super::decode_batch_from(&mut &bytes[..], &mut |_| {}).unwrap();
    assert_eq!(whole, 300);
    let with_more = [&bytes[..], b"x"].concat();
    assert!(matches!(
        super::decode_batch_from(&mut Trickle(&with_more, 7), &mut |_| {}),
        Err(WireError::TrailingBytes)
    ));
}

/// Valid batches mutated at random (fixed seed): flipped, cut, extended,
/// spliced. Both decoders agree on every input, never panic, and whatever
/// they accept is intact and re-encodes to the bytes it came from.
#[test]
fn mutated_batches_are_refused_or_decoded_alike_never_a_panic() {
    let mut rng = crate::rng::Rng::new(0x5eed_ba7c);
    let sizes = [0usize, 1, 100, 1023, 1024];
    for _ in 0..3000 {
        let count = 1 + rng.below(4) as u32;
        let chunks: Vec<Chunk> = (0..count)
            .map(|index| chunk(index, *rng.pick(&sizes)))
            .collect();
        let mut bytes = encode_batch(&chunks);
        match rng.below(4) {
            0 => {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(rng.below(bytes.len() as u64) as usize),
            2 => bytes.extend((0..rng.below(40)).map(|_| rng.below(256) as u8)),
            _ => {
                let at = rng.below(bytes.len() as u64) as usize;
                let len = (rng.below(16) as usize).min(bytes.len() - at);
                rng.fill(&mut bytes[at..at + len]);
            }
        }
        let whole = decode_batch(&mut &bytes[..]);
        let mut streamed = Vec::new();
        let count = decode_batch_from(&mut &bytes[..], &mut |chunk| {
            streamed.push(chunk.to_owned())
        });
        match (whole, count) {
            (Ok(decoded), Ok(count)) => {
                assert_eq!(decoded.len(), count as usize);
                assert_eq!(decoded, streamed);
                assert!(decoded.iter().all(Chunk::is_intact));
                let again = encode_batch(&decoded);
                assert_eq!(&bytes[..again.len()], &again[..]);
            }
            (Err(_), Err(_)) => {}
            (whole, count) => panic!("decoders disagree: {} vs {}", whole.is_ok(), count.is_ok()),
        }
    }
}
