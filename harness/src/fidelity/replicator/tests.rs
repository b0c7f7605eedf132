//! The replicator's unit tests.

use super::copy::*;
use super::state::*;
use super::*;

/// Finding 17: a copy that always fails is attempted at most MAX_COPY_ATTEMPTS times,
/// never more than 3 times in its first 3 seconds whatever the jitter, and then given
/// up (FAILED) instead of retried forever.
#[test]
fn failing_copies_back_off_and_give_up() {
    for jitter in [0.0, 0.5, 1.0] {
        let mut at = Duration::ZERO;
        let mut attempts = vec![at];
        let mut errors = 0;
        while let Some(wait) = retry_after(errors + 1, jitter) {
            errors += 1;
            at += wait;
            attempts.push(at);
        }
        assert_eq!(attempts.len() as u32, MAX_COPY_ATTEMPTS);
        let early = attempts
            .iter()
            .filter(|t| **t <= Duration::from_secs(3))
            .count();
        assert!(early <= 3, "jitter {jitter}: {attempts:?}");
        assert!(attempts.windows(2).all(|w| w[1] > w[0]));
    }
    assert_eq!(retry_after(MAX_COPY_ATTEMPTS, 0.5), None);
    let spread = [0.0, 1.0].map(|j| retry_after(3, j).unwrap());
    assert!(spread[0] < spread[1], "jitter spreads retries: {spread:?}");
}

/// Finding 16/17: a settled version keeps no string of its own; what it costs is this
/// struct, its map slot and its id pair.
#[test]
fn settled_versions_are_compact_and_keyed_apart() {
    assert!(std::mem::size_of::<Settled>() <= 40);
    assert_ne!(vkey("b", "v1"), vkey("b", "v2"));
    assert_ne!(vkey("ab", "c"), vkey("a", "bc"));
    assert_eq!(vkey("b", "v1"), vkey("b", "v1"));
    let mut st = State::default();
    st.settle(
        "p",
        "v1",
        Settled {
            status: Some(Status::Completed),
            ineligible: None,
            delete_marker: false,
            claimed: false,
            size: 1,
            etag: hash("e"),
        },
    );
    assert!(st.knows("p", "v1"));
    assert!(!st.knows("p", "v2"));
    assert!(!st.knows("q", "v1"));
}

#[test]
fn infers_common_layouts() {
    const MIB: usize = 1024 * 1024;
    assert_eq!(infer_part_size(12 * MIB, 3), 5 * MIB);
    assert_eq!(infer_part_size(100 * MIB, 4), 25 * MIB);
    assert_eq!(infer_part_size(10 * MIB, 2), 5 * MIB);
}
