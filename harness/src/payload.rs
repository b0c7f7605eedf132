//! Deterministic object bodies: the bytes scenarios, generated trees and benchmarks upload,
//! reproducible from a seed.
//!
//! Floor 0: imports only other ground rooms (no domain types).

/// Deterministic pseudo-random bytes seeded by `seed` (xorshift64*).
pub fn generated_bytes(seed: &str, size: u64) -> Vec<u8> {
    let mut state = seed.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    }) | 1;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let v = state.wrapping_mul(0x2545F4914F6CDD1D);
        for b in v.to_le_bytes() {
            if (out.len() as u64) < size {
                out.push(b);
            }
        }
    }
    out
}
