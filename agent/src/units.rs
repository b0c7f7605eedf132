//! Human-readable sizes and rates for logs, tables and notifications. Pure.
//!
//! Floor 0: may import nothing of the crate (a leaf).

/// `1.5 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Signed variant for deltas and means.
pub fn bytes_f(v: f64) -> String {
    if v < 0.0 {
        format!("-{}", bytes((-v).round() as u64))
    } else {
        bytes(v.round() as u64)
    }
}

/// Megabytes (10^6) per second.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 / 1e6 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, "0 B")]
    #[case(1023, "1023 B")]
    #[case(1024, "1.0 KiB")]
    #[case(1536, "1.5 KiB")]
    #[case(5 * 1024 * 1024, "5.0 MiB")]
    #[case(3 << 40, "3.0 TiB")]
    fn sizes(#[case] n: u64, #[case] s: &str) {
        assert_eq!(bytes(n), s);
    }

    #[test]
    fn signed_and_rates() {
        assert_eq!(bytes_f(-2048.0), "-2.0 KiB");
        assert_eq!(mb_per_s(10_000_000, 2.0), 5.0);
        assert_eq!(mb_per_s(1, 0.0), 0.0);
    }
}
