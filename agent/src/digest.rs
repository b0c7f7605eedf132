//! Incremental checksums of the archive bytes: SHA-256 (the agent's own record, checked on
//! restore) and CRC64NVME (what S3 calls the full-object checksum, checked by S3 on upload).
//! Pure.
//!
//! Floor 0: may import nothing of the crate (a leaf).

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// Both checksums, fed in order with every byte of the archive.
#[derive(Clone)]
pub struct Digests {
    sha256: Sha256,
    crc: crc_fast::Digest,
    bytes: u64,
}

/// The final values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checksums {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// CRC64NVME as S3 spells it: base64 of the 8 big-endian bytes.
    pub crc64nvme: String,
    pub bytes: u64,
}

impl Default for Digests {
    fn default() -> Self {
        Digests::new()
    }
}

impl Digests {
    pub fn new() -> Digests {
        Digests {
            sha256: Sha256::new(),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
            bytes: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.crc.update(data);
        self.bytes += data.len() as u64;
    }

    pub fn finish(self) -> Checksums {
        Checksums {
            sha256: hex::encode(self.sha256.finalize()),
            crc64nvme: crc64_base64(self.crc.finalize()),
            bytes: self.bytes,
        }
    }
}

/// CRC64NVME of one buffer, base64 as S3 expects in `x-amz-checksum-crc64nvme`.
pub fn crc64nvme_base64(data: &[u8]) -> String {
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    d.update(data);
    crc64_base64(d.finalize())
}

fn crc64_base64(v: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64nvme_matches_the_reference_value() {
        // Reference value of CRC-64/NVME for "hello world!" (crc64fast-nvme docs).
        let expected =
            base64::engine::general_purpose::STANDARD.encode(0xd9160d1fa8e418e3u64.to_be_bytes());
        assert_eq!(crc64nvme_base64(b"hello world!"), expected);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut d = Digests::new();
        for chunk in data.chunks(777) {
            d.update(chunk);
        }
        let c = d.finish();
        assert_eq!(c.crc64nvme, crc64nvme_base64(&data));
        assert_eq!(c.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(c.bytes, data.len() as u64);
    }

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            Digests::new().finish().sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
