//! The journal and checkpoint frames (`naming::journal::record`): a stream
//! of any bytes is read frame by frame and each payload parsed, without a
//! panic or an allocation past the frame limit; what parses re-frames to
//! a payload that parses to the same record (byte for byte the same unless
//! it was a record of an older kind, such as a create without an mtime,
//! which is written back in the current kind), and re-frames to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use naming::journal::record::{frame, parse, read_frame};

fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    while let Ok(Some(payload)) = read_frame(&mut reader) {
        let _ = parse(&payload);
    }
    if let Ok(record) = parse(data) {
        let framed = frame(&record);
        let mut again = &framed[..];
        let payload = read_frame(&mut again).unwrap().unwrap();
        let reparsed = parse(&payload).unwrap();
        assert_eq!(reparsed, record);
        assert_eq!(frame(&reparsed), framed, "the current kinds are a fixed point");
    }
});
