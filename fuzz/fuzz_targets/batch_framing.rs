//! The chunk batch format (`common::wire`): both decoders take any bytes
//! without a panic, agree with each other, and what they accept re-encodes
//! to the same bytes.
#![no_main]

use common::wire::{decode_batch, decode_batch_from, encode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = decode_batch(&mut &data[..]);
    let mut streamed = Vec::new();
    let count = decode_batch_from(&mut &data[..], &mut |chunk| streamed.push(chunk.to_owned()));
    match (whole, count) {
        (Ok(chunks), Ok(count)) => {
            assert_eq!(chunks.len(), count as usize);
            assert_eq!(chunks, streamed);
            assert!(chunks.iter().all(|chunk| chunk.is_intact()));
            let encoded = encode_batch(&chunks);
            assert_eq!(&data[..encoded.len()], &encoded[..]);
        }
        (Err(_), Err(_)) => {}
        (whole, count) => panic!(
            "the decoders disagree: {:?} vs {:?}",
            whole.is_ok(),
            count.is_ok()
        ),
    }
});
