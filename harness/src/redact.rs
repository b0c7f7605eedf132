//! Redaction: turns values that change between runs and engines (run suffixes, version
//! ids, message ids, timestamps, endpoints) into stable placeholders, so a transcript is
//! byte-identical across runs and engines. The same value always gets the same
//! placeholder, numbered in order of first appearance.
//!
//! Floor 0: imports only other ground rooms (no domain types).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

/// Collects the run's volatile values, then rewrites text.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// value -> kind ("version", "message", ...).
    values: BTreeMap<String, &'static str>,
    /// Literal replacements applied first (suffix, endpoint).
    literals: Vec<(String, String)>,
    /// Patterns applied last, in order (figures that depend on timing).
    patterns: Vec<(Regex, String)>,
}

fn timestamp() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
            .expect("valid regex")
    })
}

fn uuid() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
            .expect("valid regex")
    })
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Replaces every `-<suffix>` with `-{run}`.
    pub fn suffix(&mut self, suffix: &str) -> &mut Self {
        self.literals.push((format!("-{suffix}"), "-{run}".into()));
        self
    }

    /// Replaces a literal (e.g. the endpoint) with a fixed placeholder.
    pub fn literal(&mut self, value: &str, placeholder: &str) -> &mut Self {
        if !value.is_empty() {
            self.literals
                .push((value.to_string(), placeholder.to_string()));
        }
        self
    }

    /// Replaces every match of `pattern` with `replacement` (`$1` names groups), after
    /// everything else, in the order added.
    pub fn pattern(&mut self, pattern: &str, replacement: &str) -> &mut Self {
        match Regex::new(pattern) {
            Ok(re) => self.patterns.push((re, replacement.to_string())),
            Err(e) => tracing::error!(pattern, error = %e, "invalid redaction pattern"),
        }
        self
    }

    /// Registers a volatile value of `kind` (`version`, `message`, ...).
    pub fn value(&mut self, kind: &'static str, value: &str) -> &mut Self {
        if value.len() >= 4 {
            self.values.entry(value.to_string()).or_insert(kind);
        }
        self
    }

    /// Rewrites `text`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Longest first: a literal that contains another (a work directory named after the
        // run's suffix) is replaced whole.
        let mut literals: Vec<&(String, String)> = self.literals.iter().collect();
        literals.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        for (from, to) in literals {
            out = out.replace(from, to);
        }
        // Number each kind's values by first appearance.
        let mut found: Vec<(usize, &str, &'static str)> = self
            .values
            .iter()
            .filter_map(|(v, k)| out.find(v.as_str()).map(|pos| (pos, v.as_str(), *k)))
            .collect();
        found.sort();
        let mut counters: BTreeMap<&str, usize> = BTreeMap::new();
        let mut replacements: Vec<(&str, String)> = found
            .into_iter()
            .map(|(_, v, k)| {
                let n = counters.entry(k).or_insert(0);
                *n += 1;
                (v, format!("[{k}-{n}]"))
            })
            .collect();
        // Longest first, so a value that contains another is replaced whole.
        replacements.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        for (v, placeholder) in replacements {
            out = out.replace(v, &placeholder);
        }
        out = timestamp().replace_all(&out, "[time]").into_owned();
        out = uuid().replace_all(&out, "[uuid]").into_owned();
        for (re, to) in &self.patterns {
            out = re.replace_all(&out, to.as_str()).into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn same_value_same_placeholder() {
        let mut r = Redactor::new();
        r.suffix("ab12cd")
            .value("version", "AaIAhpgRGcNZ")
            .value("version", "bf556353-1307-43d4-bc6e-2b0020d012e0")
            .value("message", "m-1234");
        let text = "bucket autobackup-documents-primary-dev-ab12cd v=bf556353-1307-43d4-bc6e-2b0020d012e0 \
                    then AaIAhpgRGcNZ again bf556353-1307-43d4-bc6e-2b0020d012e0 msg m-1234 at 2026-11-22T00:00:01.5Z";
        assert_eq!(
            r.apply(text),
            "bucket autobackup-documents-primary-dev-{run} v=[version-1] then [version-2] again [version-1] msg [message-1] at [time]"
        );
    }

    #[test]
    fn a_literal_containing_another_is_replaced_whole() {
        let mut r = Redactor::new();
        r.suffix("ab12cd").literal("/tmp/agent-ab12cd", "[work]");
        assert_eq!(
            r.apply("log at /tmp/agent-ab12cd/x.log, bucket b-ab12cd"),
            "log at [work]/x.log, bucket b-{run}"
        );
    }

    #[test]
    fn patterns_apply_last_in_order() {
        let mut r = Redactor::new();
        r.pattern(r"after \d+s", "after [n]s")
            .pattern(r"\[n\]", "N");
        assert_eq!(r.apply("no replica after 61s"), "no replica after Ns");
    }

    proptest! {
        #[test]
        fn redaction_is_idempotent(values in prop::collection::vec("[a-zA-Z0-9]{4,10}", 0..5), text in "[a-zA-Z0-9 ]{0,80}") {
            let mut r = Redactor::new();
            for v in &values { r.value("version", v); }
            let once = r.apply(&text);
            // Placeholders never contain registered values of length >= 4 made of [a-zA-Z0-9] except "version" itself.
            prop_assume!(!values.iter().any(|v| "[version-0123456789]".contains(v.as_str())));
            prop_assert_eq!(r.apply(&once), once);
        }
    }
}
