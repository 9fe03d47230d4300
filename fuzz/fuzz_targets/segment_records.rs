//! The segment record reader (`storage::record`): any bytes, as a whole
//! segment file or as a run read back, are scanned or refused without a
//! panic, and the scan never claims more than the file holds.
#![no_main]

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use common::chunk::BlobId;
use libfuzzer_sys::fuzz_target;
use storage::record::{self, Piece, Visitor};

struct Count(usize);

impl Visitor for Count {
    fn visit(&mut self, piece: &Piece<'_>) -> std::io::Result<()> {
        for record in &piece.records {
            let _ = piece.data_intact(record);
            self.0 += 1;
        }
        Ok(())
    }
}

/// One scratch file per process, rewritten for each input.
static SCRATCH: Mutex<Option<File>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut scratch = SCRATCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if scratch.is_none() {
        let path =
            std::env::temp_dir().join(format!("harbour-fuzz-segment-{}", std::process::id()));
        *scratch = Some(
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .unwrap(),
        );
    }
    let file = scratch.as_mut().unwrap();
    file.set_len(0).unwrap();
    std::io::Seek::rewind(file).unwrap();
    file.write_all(data).unwrap();
    let len = data.len() as u64;
    let (valid_len, _end) = record::scan(file, len, &mut Count(0)).unwrap();
    assert!(valid_len <= len);
    if data.len() >= 8 {
        let count = u32::from(data[0] % 8) + 1;
        let last_len = u32::from(data[1]) * 4;
        for chunk in record::verify_run(data, 0, (BlobId(u64::from(data[2])), 0), count, last_len) {
            let _ = chunk;
        }
        let _ = record::parse_at(data, usize::from(data[3]) % data.len(), 0);
    }
});
