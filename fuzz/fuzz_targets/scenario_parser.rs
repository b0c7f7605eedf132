//! Fuzz target: the harness's scenario-file parser (`Scenario::parse`) on arbitrary text.
//!
//! Every error must be a located [`FileError::Invalid`] (`path:line:column: message` with a
//! hint, the line inside the file); every scenario that parses must keep the promises the
//! runner relies on: durations finite and within a day, generated uploads within
//! [`MAX_UPLOAD_SIZE`], and fixture paths that stay inside `fixtures/` once joined to it
//! (checked here lexically, independently of the parser's own check).

#![no_main]

use std::path::{Component, Path};
use std::sync::OnceLock;

use harness::errors::FileError;
use harness::scenario::file::Scenario;
use harness::scenario::steps::{Step, MAX_UPLOAD_SIZE};
use harness::topology::TopologySpec;
use libfuzzer_sys::{fuzz_target, Corpus};

/// The topology's categories (fixtures/topology.toml), as `harness scenario run` uses them.
fn categories() -> &'static [String] {
    static CATS: OnceLock<Vec<String>> = OnceLock::new();
    CATS.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/topology.toml");
        TopologySpec::load(&path)
            .map(|s| s.categories)
            .unwrap_or_else(|_| vec!["documents".into(), "media".into(), "database".into()])
    })
}

/// Whether `fixtures/<rel>` stays inside `fixtures/` (lexically: no root, no `..` that
/// climbs out).
fn stays_inside_fixtures(rel: &str) -> bool {
    let root = Path::new("/fuzz-root/fixtures");
    let joined = root.join(rel);
    if !joined.starts_with(root) {
        return false;
    }
    let mut depth: i64 = 0;
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    // `fixtures/.` itself is not an escape (reading it fails as a directory, with the path).
    true
}

fn is_duration(s: f64) -> bool {
    s.is_finite() && (0.0..=86_400.0).contains(&s)
}

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(text) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let path = Path::new("scenarios/fuzz.toml");
    let lines = text.split('\n').count();
    match Scenario::parse(path, text, categories()) {
        Err(FileError::Invalid {
            path: p,
            line,
            column,
            hint,
            ..
        }) => {
            assert_eq!(p, path);
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            assert!(column >= 1, "column {column}");
            assert!(!hint.is_empty(), "an error without a hint");
        }
        Err(other) => panic!("parse returned a non-located error: {other}"),
        Ok(s) => {
            for st in &s.steps {
                assert!(st.line >= 1 && st.line <= lines, "step line {}", st.line);
                match &st.step {
                    Step::Upload(u) => {
                        assert!(u.size.is_none_or(|n| n <= MAX_UPLOAD_SIZE));
                        if let Some(f) = &u.fixture {
                            assert!(stays_inside_fixtures(f), "fixture {f:?} escapes fixtures/");
                        }
                    }
                    Step::Wait(w) => {
                        assert!(is_duration(w.timeout_seconds) && w.timeout_seconds > 0.0)
                    }
                    Step::Replication(r) => assert!(r.seconds.is_none_or(is_duration)),
                    _ => {}
                }
            }
        }
    }
    Corpus::Keep
});
