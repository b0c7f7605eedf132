//! Generated workloads: `proptest` strategies for sequences of what happens to a backup
//! system (uploads of every size from 0 B to multipart, awkward keys, SSE types, storage
//! classes and all three categories; overwrites, deletes and delete markers, duplicate
//! deliveries, poison bodies, replication delays and faults, API faults from
//! [`crate::fidelity::faults`]), rendered as scenario text the ordinary runner plays and the
//! invariants ([`super::invariants`]) check. Failures shrink to a minimal workload, and a
//! rendered workload is a ready-to-commit scenario file.
//!
//! A workload names keys by index; [`render`] puts them under a prefix, so workloads can
//! share one provisioned topology without touching each other's objects. Rendering drops
//! what would make a step meaningless or racy on its own terms (a duplicate event for a key
//! with no current version, a replication fault set after the key's first upload, whose
//! copy may or may not be under way), so every workload is playable as written.

use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Categories, by key index (a key always lives in one category, so uploads to it overwrite).
pub const CATEGORIES: [&str; 3] = ["documents", "media", "database"];

/// Key stems: plain, nested, and the awkward ones (spaces, `+`, `%`, `=`, non-ASCII, a
/// trailing space, an escape look-alike).
pub const STEMS: [&str; 8] = [
    "plain.txt",
    "deep/nested/dir/file.bin",
    "two  spaces and trailing .txt",
    "plus+sign=equals.csv",
    "100%/done.txt",
    "unicode/Ünïcödé 日本語.txt",
    "literal/a%41b+c.dat",
    "report (final) [v2].pdf",
];

const MIB: u64 = 1024 * 1024;

/// An upload's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Empty,
    Bytes(u64),
    /// Multipart in 5 MiB parts.
    Multipart(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Standard,
    StandardIa,
    IntelligentTiering,
    /// Never replicated by S3: one not-replicated alert.
    Glacier,
}

impl Class {
    fn name(self) -> Option<&'static str> {
        match self {
            Class::Standard => None,
            Class::StandardIa => Some("STANDARD_IA"),
            Class::IntelligentTiering => Some("INTELLIGENT_TIERING"),
            Class::Glacier => Some("GLACIER"),
        }
    }
}

/// A replication fault, from the harness replicator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationFault {
    Corrupt,
    Failed,
    Relayout,
}

/// API faults through the fidelity layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFault {
    /// S3 throttles the workload's `HeadObject`s (503 SlowDown).
    S3HeadThrottle(u32),
    /// SNS throttles `Publish` (429, not retried by the SDK).
    SnsPublishThrottle(u32),
    /// SNS answers 503 to the next requests.
    SnsOutage(u32),
    /// SQS throttles `SendMessage` (absorbed by the SDK's retries).
    SqsSendThrottle(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poison {
    NotJson,
    NotAnEvent,
}

/// One thing that happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Upload {
        key: usize,
        size: Size,
        sse_kms: bool,
        class: Class,
        without_checksum: bool,
    },
    Delete {
        key: usize,
        permanent: bool,
    },
    /// The current version's event delivered again.
    Duplicate {
        key: usize,
    },
    Poison(Poison),
    ReplicationFault {
        key: usize,
        fault: ReplicationFault,
    },
    ReplicationDelay {
        key: usize,
        seconds: u32,
    },
    Api(ApiFault),
}

/// A generated workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub ops: Vec<Op>,
}

/// The faults a rendered workload injects, by kind (for the summary): what its steps do,
/// after rendering dropped what it had to.
pub fn fault_kinds(s: &crate::scenario::Scenario) -> Vec<&'static str> {
    use crate::fidelity::faults::{EffectKind, Service};
    use crate::scenario::steps::{ReplicationAction, Step};
    s.steps
        .iter()
        .filter_map(|l| match &l.step {
            Step::Replication(r) => Some(match (r.action, r.fault) {
                (ReplicationAction::Delay, _) => "replication delay",
                (_, Some(crate::fidelity::replicator::Fault::Corrupt)) => "replication corrupt",
                (_, Some(crate::fidelity::replicator::Fault::Failed)) => "replication failed",
                (_, Some(crate::fidelity::replicator::Fault::Relayout)) => "replication relayout",
                _ => "replication other",
            }),
            Step::Fault(f) => Some(match (f.service, f.effect) {
                (Service::S3, EffectKind::Throttle) => "s3 throttle",
                (Service::Sns, EffectKind::Throttle) => "sns throttle",
                (Service::Sqs, EffectKind::Throttle) => "sqs throttle",
                _ => "api other",
            }),
            Step::Outage(_) => Some("sns outage"),
            Step::Send(_) => Some("poison body"),
            Step::SendEvent(_) => Some("duplicate delivery"),
            Step::Delete(d) if d.permanent => Some("permanent delete"),
            Step::Delete(_) => Some("delete marker"),
            Step::Upload(u)
                if u.storage_class == Some(crate::scenario::steps::StorageClass::Glacier) =>
            {
                Some("ineligible (GLACIER)")
            }
            Step::Upload(u) if u.part_size.is_some() => Some("multipart upload"),
            Step::Upload(u) if u.size == Some(0) => Some("empty upload"),
            _ => None,
        })
        .collect()
}

fn key() -> impl Strategy<Value = usize> {
    0..STEMS.len()
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![
        2 => Just(Size::Empty),
        6 => (1u64..2048).prop_map(Size::Bytes),
        3 => (2048u64..300_000).prop_map(Size::Bytes),
        1 => (5 * MIB + 1..6 * MIB).prop_map(Size::Multipart),
    ]
}

fn class() -> impl Strategy<Value = Class> {
    prop_oneof![
        12 => Just(Class::Standard),
        2 => Just(Class::StandardIa),
        1 => Just(Class::IntelligentTiering),
        1 => Just(Class::Glacier),
    ]
}

fn upload() -> impl Strategy<Value = Op> {
    (
        key(),
        size(),
        prop::bool::weighted(0.2),
        class(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(key, size, sse_kms, class, without_checksum)| Op::Upload {
            key,
            size,
            sse_kms,
            class,
            without_checksum,
        })
}

fn api_fault() -> impl Strategy<Value = ApiFault> {
    prop_oneof![
        (1u32..=3).prop_map(ApiFault::S3HeadThrottle),
        (1u32..=3).prop_map(ApiFault::SnsPublishThrottle),
        (1u32..=3).prop_map(ApiFault::SnsOutage),
        (1u32..=2).prop_map(ApiFault::SqsSendThrottle),
    ]
}

/// One operation; uploads dominate.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => upload(),
        2 => (key(), any::<bool>()).prop_map(|(key, permanent)| Op::Delete { key, permanent }),
        2 => key().prop_map(|key| Op::Duplicate { key }),
        1 => prop_oneof![Just(Poison::NotJson), Just(Poison::NotAnEvent)].prop_map(Op::Poison),
        3 => (key(), prop_oneof![
            Just(ReplicationFault::Corrupt),
            Just(ReplicationFault::Failed),
            Just(ReplicationFault::Relayout),
        ])
            .prop_map(|(key, fault)| Op::ReplicationFault { key, fault }),
        1 => (key(), 1u32..=5).prop_map(|(key, seconds)| Op::ReplicationDelay { key, seconds }),
        2 => api_fault().prop_map(Op::Api),
    ]
}

/// Workloads of 1 to `max_ops` operations.
pub fn workload(max_ops: usize) -> impl Strategy<Value = Workload> {
    prop::collection::vec(op(), 1..=max_ops.max(1)).prop_map(|ops| Workload { ops })
}

/// A deterministic runner for `seed`: the same seed generates the same workloads.
pub fn runner(seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// The `n` workload trees of a seed, each able to shrink.
pub fn trees(
    seed: u64,
    n: usize,
    max_ops: usize,
) -> Result<Vec<Box<dyn ValueTree<Value = Workload>>>, GenerateError> {
    let mut r = runner(seed);
    let s = workload(max_ops).boxed();
    (0..n)
        .map(|_| {
            s.new_tree(&mut r)
                .map(|t| Box::new(t) as Box<dyn ValueTree<Value = Workload>>)
                .map_err(|r| GenerateError(r.to_string()))
        })
        .collect()
}

/// A strategy refused to generate.
#[derive(Debug, thiserror::Error)]
#[error("generating a workload: {0}")]
pub struct GenerateError(String);

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The object key of key index `k` under `prefix`.
pub fn key_name(prefix: &str, k: usize) -> String {
    format!("{prefix}{}", STEMS[k % STEMS.len()])
}

/// `category/key` of key index `k`.
pub fn object_name(prefix: &str, k: usize) -> String {
    format!(
        "{}/{}",
        CATEGORIES[k % CATEGORIES.len()],
        key_name(prefix, k)
    )
}

/// The key a delete or duplicate delivery acts on: the `k`-th (cyclically) of the keys
/// that have a current version, so that they act whenever there is one.
fn present(current: &[bool], k: usize) -> Option<usize> {
    let keys: Vec<usize> = (0..current.len()).filter(|i| current[*i]).collect();
    (!keys.is_empty()).then(|| keys[k % keys.len()])
}

/// The steps of `w` under `prefix` (TOML `[[step]]` tables).
pub fn render_steps(w: &Workload, prefix: &str) -> String {
    let n = STEMS.len();
    let (mut uploaded, mut live, mut current) = (vec![false; n], vec![0u32; n], vec![false; n]);
    // The harness's own HeadObject (a duplicate delivery's event, a permanent delete) goes
    // through the fidelity layer too: a burst longer than the SDK's three attempts would
    // fail the step instead of testing the system.
    let harness_heads = w.ops.iter().any(|o| {
        matches!(
            o,
            Op::Duplicate { .. }
                | Op::Delete {
                    permanent: true,
                    ..
                }
        )
    });
    let mut out = String::new();
    let mut step = |s: String| {
        let _ = writeln!(out, "[[step]]\n{s}\n");
    };
    for op in &w.ops {
        match *op {
            Op::Upload {
                key,
                size,
                sse_kms,
                class,
                without_checksum,
            } => {
                let mut fields = vec![
                    format!("category = {}", quoted(CATEGORIES[key % CATEGORIES.len()])),
                    format!("key = {}", quoted(&key_name(prefix, key))),
                ];
                match size {
                    Size::Empty => fields.push("size = 0".into()),
                    Size::Bytes(b) => fields.push(format!("size = {b}")),
                    Size::Multipart(b) => {
                        fields.push(format!("size = {b}"));
                        fields.push(format!("part_size = {}", 5 * MIB));
                    }
                }
                if sse_kms {
                    fields.push("sse_kms = true".into());
                }
                if let Some(c) = class.name() {
                    fields.push(format!("storage_class = {}", quoted(c)));
                }
                if without_checksum {
                    fields.push("without_checksum = true".into());
                }
                step(format!("upload = {{ {} }}", fields.join(", ")));
                uploaded[key] = true;
                live[key] += 1;
                current[key] = true;
            }
            Op::Delete { key, permanent } => {
                let Some(key) = present(&current, key) else {
                    continue;
                };
                step(format!(
                    "delete = {{ object = {}{} }}",
                    quoted(&object_name(prefix, key)),
                    if permanent { ", permanent = true" } else { "" }
                ));
                if permanent {
                    live[key] -= 1;
                    current[key] = live[key] > 0;
                } else {
                    current[key] = false;
                }
            }
            Op::Duplicate { key } => {
                if let Some(key) = present(&current, key) {
                    step(format!(
                        "send-event = {{ object = {} }}",
                        quoted(&object_name(prefix, key))
                    ));
                }
            }
            Op::Poison(p) => step(format!(
                "send = {{ queue = \"validation\", body = {} }}",
                quoted(match p {
                    Poison::NotJson => "this is not an S3 event {",
                    Poison::NotAnEvent => "{\"not\": \"an s3 event\"}",
                })
            )),
            Op::ReplicationFault { key, fault } => {
                if !uploaded[key] {
                    step(format!(
                        "replication = {{ action = \"fault\", key = {}, fault = \"{}\" }}",
                        quoted(&key_name(prefix, key)),
                        match fault {
                            ReplicationFault::Corrupt => "corrupt",
                            ReplicationFault::Failed => "failed",
                            ReplicationFault::Relayout => "relayout",
                        }
                    ));
                }
            }
            Op::ReplicationDelay { key, seconds } => {
                if !uploaded[key] {
                    step(format!(
                        "replication = {{ action = \"delay\", key = {}, seconds = {seconds} }}",
                        quoted(&key_name(prefix, key))
                    ));
                }
            }
            Op::Api(a) => step(match a {
                ApiFault::S3HeadThrottle(n) => format!(
                    "fault = {{ service = \"s3\", operation = \"HeadObject\", key_prefix = {}, effect = \"throttle\", count = {} }}",
                    quoted(prefix),
                    if harness_heads { n.min(2) } else { n }
                ),
                ApiFault::SnsPublishThrottle(n) => format!(
                    "fault = {{ service = \"sns\", operation = \"Publish\", effect = \"throttle\", count = {n} }}"
                ),
                ApiFault::SnsOutage(n) => format!("outage = {{ service = \"sns\", failures = {n} }}"),
                ApiFault::SqsSendThrottle(n) => format!(
                    "fault = {{ service = \"sqs\", operation = \"SendMessage\", effect = \"throttle\", count = {n} }}"
                ),
            }),
        }
    }
    out
}

/// `w` as a complete scenario file (no `[expect]`: the invariants are the expectation).
pub fn render(w: &Workload, prefix: &str, origin: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Generated by `harness fuzz` ({origin}).");
    let _ = writeln!(
        out,
        "# Shrunk to {} operation(s); the invariants checked after every run are its expectation.",
        w.ops.len()
    );
    let _ = writeln!(
        out,
        "description = {}",
        quoted(&format!(
            "A generated workload ({origin}) that broke an invariant"
        ))
    );
    let _ = writeln!(out, "profile = \"fast\"\n");
    out.push_str(&render_steps(w, prefix));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::steps::Step;

    fn categories() -> Vec<String> {
        CATEGORIES.iter().map(|c| c.to_string()).collect()
    }

    proptest! {
        /// Every generated workload renders to a scenario the parser accepts, with one
        /// step per operation that survives rendering and keys under the prefix.
        #[test]
        fn every_workload_renders_to_a_valid_scenario(w in workload(12)) {
            let text = render(&w, "fz/1/", "test");
            let s = crate::scenario::Scenario::parse(
                std::path::Path::new("generated.toml"),
                &text,
                &categories(),
            );
            prop_assert!(s.is_ok(), "{text}\n{:?}", s.err());
            let s = s.unwrap_or_else(|_| unreachable!());
            prop_assert!(s.steps.len() <= w.ops.len());
            for st in &s.steps {
                if let Step::Upload(u) = &st.step {
                    prop_assert!(u.key.starts_with("fz/1/"));
                }
            }
        }
    }

    #[test]
    fn a_seed_replays_the_same_workloads() {
        let a: Vec<Workload> = trees(7, 5, 8)
            .expect("generates")
            .iter()
            .map(|t| t.current())
            .collect();
        let b: Vec<Workload> = trees(7, 5, 8)
            .expect("generates")
            .iter()
            .map(|t| t.current())
            .collect();
        assert_eq!(a, b);
        assert_ne!(
            a,
            trees(8, 5, 8)
                .expect("generates")
                .iter()
                .map(|t| t.current())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn racy_steps_are_dropped() {
        let w = Workload {
            ops: vec![
                Op::Duplicate { key: 0 },
                Op::Upload {
                    key: 0,
                    size: Size::Empty,
                    sse_kms: false,
                    class: Class::Standard,
                    without_checksum: false,
                },
                Op::ReplicationFault {
                    key: 0,
                    fault: ReplicationFault::Corrupt,
                },
                Op::Delete {
                    key: 0,
                    permanent: false,
                },
                Op::Duplicate { key: 0 },
            ],
        };
        let text = render_steps(&w, "p/");
        assert_eq!(text.matches("[[step]]").count(), 2, "{text}");
        assert!(!text.contains("fault"), "{text}");
    }
}
