//! The `x-amz-checksum-*` algorithms S3 clients send beside (or after) an
//! object's bytes: CRC32 (the SDKs' default), CRC32C, CRC64NVME, SHA-1 and
//! SHA-256, computed as the body streams and compared at its end. Pure.

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// One running checksum.
pub enum Checksum {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(u64),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Checksum {
    /// The checksum a header name such as `x-amz-checksum-crc32` stands for.
    pub fn for_header(name: &str) -> Option<Checksum> {
        Some(match name.strip_prefix("x-amz-checksum-")? {
            "crc32" => Checksum::Crc32(crc32fast::Hasher::new()),
            "crc32c" => Checksum::Crc32c(0),
            "crc64nvme" => Checksum::Crc64Nvme(!0),
            "sha1" => Checksum::Sha1(Sha1::new()),
            "sha256" => Checksum::Sha256(Sha256::new()),
            _ => return None,
        })
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Checksum::Crc32(hasher) => hasher.update(bytes),
            Checksum::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, bytes),
            Checksum::Crc64Nvme(crc) => *crc = crc64nvme_append(*crc, bytes),
            Checksum::Sha1(hasher) => hasher.update(bytes),
            Checksum::Sha256(hasher) => hasher.update(bytes),
        }
    }

    /// The checksum's bytes, big-endian, as the header's base64 carries them.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Checksum::Crc32(hasher) => hasher.finalize().to_be_bytes().to_vec(),
            Checksum::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            Checksum::Crc64Nvme(crc) => (!crc).to_be_bytes().to_vec(),
            Checksum::Sha1(hasher) => hasher.finalize().to_vec(),
            Checksum::Sha256(hasher) => hasher.finalize().to_vec(),
        }
    }
}

/// CRC-64/NVME (reflected polynomial 0x9A6C9329AC4BC9B5), a byte at a time
/// through a table built at compile time: no crate carries it small.
const CRC64NVME_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = match crc & 1 {
                1 => (crc >> 1) ^ 0x9A6C_9329_AC4B_C9B5,
                _ => crc >> 1,
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

fn crc64nvme_append(mut crc: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        crc = CRC64NVME_TABLE[((crc ^ u64::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::Checksum;
    use crate::s3::encoding::hex;

    /// The catalogue's check values: each algorithm over `123456789`.
    #[test]
    fn each_algorithm_gives_its_check_value() {
        for (header, check) in [
            ("x-amz-checksum-crc32", "cbf43926"),
            ("x-amz-checksum-crc32c", "e3069283"),
            ("x-amz-checksum-crc64nvme", "ae8b14860a799888"),
            (
                "x-amz-checksum-sha1",
                "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
            ),
            (
                "x-amz-checksum-sha256",
                "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
            ),
        ] {
            let mut checksum = Checksum::for_header(header).unwrap();
            checksum.update(b"1234");
            checksum.update(b"56789");
            assert_eq!(hex(&checksum.finish()), check, "{header}");
        }
        assert!(Checksum::for_header("x-amz-checksum-md4").is_none());
    }
}
