//! Resident memory figures from `/proc/self/status` (Linux): the peak (`VmHWM`) reported by
//! `backup --json` and `bench`, and resetting the peak between benchmark phases.
//!
//! Floor 0: may import nothing of the crate (a leaf).

/// A `kB` field of a `/proc/<pid>/status` text, in bytes. Pure.
pub fn parse_status(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

fn field(name: &str) -> Option<u64> {
    parse_status(&std::fs::read_to_string("/proc/self/status").ok()?, name)
}

/// Peak resident set size of this process so far.
pub fn peak_bytes() -> Option<u64> {
    field("VmHWM")
}

/// Current resident set size.
pub fn current_bytes() -> Option<u64> {
    field("VmRSS")
}

/// Resets the peak to the current RSS (`echo 5 > /proc/self/clear_refs`).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_fields() {
        let text = "Name:\tx\nVmPeak:\t  200 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status(text, "VmHWM"), Some(1234 * 1024));
        assert_eq!(parse_status(text, "VmRSS"), Some(1000 * 1024));
        assert_eq!(parse_status(text, "VmSwap"), None);
        assert_eq!(parse_status("VmHWM:\tlots kB\n", "VmHWM"), None);
    }

    #[test]
    fn live_figures_are_plausible() {
        // Current first: the high-water mark read afterwards is at least that (other test
        // threads allocate concurrently, so the other order races).
        let now = current_bytes().unwrap();
        let peak = peak_bytes().unwrap();
        assert!(now > 0);
        assert!(peak >= now, "peak {peak} below an earlier current {now}");
    }
}
