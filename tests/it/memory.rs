//! SPEC promise 9: memory stays bounded whatever the file size. A large
//! file is streamed up and down (generated and checked on the fly, never
//! held by the test either) and every process's peak RSS is checked.

use std::io::{self, Read};
use std::time::Instant;

use common::chunk::crc32c_append;

use crate::cluster::{Cluster, Spec, opted_in, slow_tests};

/// Peak RSS any Harbour process may reach while streaming a file of any size.
pub const PEAK_RSS_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Produces `remaining` pseudo-random bytes and their CRC32C.
struct Generated {
    remaining: u64,
    state: u64,
    crc: u32,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let len = (out.len() as u64).min(self.remaining) as usize;
        for word in out[..len].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            word.copy_from_slice(&self.state.to_le_bytes()[..word.len()]);
        }
        self.crc = crc32c_append(self.crc, &out[..len]);
        self.remaining -= len as u64;
        Ok(len)
    }
}

fn expected_crc(size_bytes: u64) -> u32 {
    let mut generated = Generated {
        remaining: size_bytes,
        state: 0x1234_5678,
        crc: 0,
    };
    io::copy(&mut generated, &mut io::sink()).unwrap();
    generated.crc
}

fn check_streamed_file(size_bytes: u64) {
    let mut cluster = Cluster::start(Spec {
        storage: 2,
        ..Spec::default()
    });
    let url = format!("{}/files/large.bin", cluster.url());
    let started = Instant::now();
    let body = Generated {
        remaining: size_bytes,
        state: 0x1234_5678,
        crc: 0,
    };
    let response = cluster
        .agent
        .put(&url)
        .header("Content-Length", size_bytes.to_string())
        .send(ureq::SendBody::from_owned_reader(body))
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let up = started.elapsed();

    let started = Instant::now();
    let response = cluster.agent.get(&url).call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut reader = response.into_body().into_reader();
    let mut buffer = vec![0u8; 256 * 1024];
    let (mut read_bytes, mut crc) = (0u64, 0u32);
    loop {
        let read = reader.read(&mut buffer).unwrap();
        if read == 0 {
            break;
        }
        crc = crc32c_append(crc, &buffer[..read]);
        read_bytes += read as u64;
    }
    let down = started.elapsed();
    assert_eq!(read_bytes, size_bytes);
    assert_eq!(crc, expected_crc(size_bytes), "the bytes read back differ");
    let mib = size_bytes as f64 / (1024.0 * 1024.0);
    eprintln!(
        "streamed {mib:.0} MiB: up {:.1} MiB/s, down {:.1} MiB/s",
        mib / up.as_secs_f64(),
        mib / down.as_secs_f64()
    );
    let naming_rss = cluster.naming().peak_rss_bytes();
    let storage_rss = [
        cluster.storage(0).peak_rss_bytes(),
        cluster.storage(1).peak_rss_bytes(),
    ];
    eprintln!(
        "peak RSS: naming {} KiB, storage {:?} KiB",
        naming_rss / 1024,
        storage_rss.map(|rss| rss / 1024)
    );
    for rss in [naming_rss, storage_rss[0], storage_rss[1]] {
        assert!(
            rss < PEAK_RSS_BYTES_MAX,
            "peak RSS {rss} bytes while streaming {size_bytes} bytes"
        );
    }
}

#[test]
fn a_256_mib_file_streams_through_in_bounded_memory() {
    check_streamed_file(256 * 1024 * 1024);
}

#[test]
fn a_1_gib_file_streams_through_in_bounded_memory() {
    if !slow_tests("streaming 1 GiB") {
        return;
    }
    check_streamed_file(1024 * 1024 * 1024);
}

/// The 4 GiB run of `make bench`: beside the 256 MiB and 1 GiB runs, it
/// shows every process's memory flat in the file size.
#[test]
fn a_4_gib_file_streams_through_in_bounded_memory() {
    if !opted_in("HARBOUR_BENCH", "streaming 4 GiB (make bench)") {
        return;
    }
    check_streamed_file(4 * 1024 * 1024 * 1024);
}
