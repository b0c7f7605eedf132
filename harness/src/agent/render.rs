//! The agent's part of a scenario transcript: its runs, its notifications, and the rules
//! that keep their figures stable.
//!
//! An archive's bytes depend on the machine (tar headers carry the owner's uid and gid), so
//! everything derived from them is named after the backup instead of shown: the key's
//! timestamp becomes `[backup-N]` (N in the order stored), its SHA-256 and CRC64NVME
//! `[sha256 of backup-N]` and `[crc64 of backup-N]`, its size `[size of backup-N]`.
//! Anomaly verdicts keep their meaning in figures that survive a few bytes of difference:
//! direction, the ratio to the mean (one decimal), the number of earlier runs and k.
//! What the tree holds (files, uncompressed bytes) is deterministic and shown as is.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use autobackup_agent::anomaly::{Check, Direction};
use regex::Regex;

use super::{AgentRun, RunKind};
use crate::redact::Redactor;

/// Backup keys the agent stored, numbered in the order stored (1-based).
pub fn backup_labels(runs: &[AgentRun]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in runs.iter().filter_map(AgentRun::stored) {
        let n = out.len() + 1;
        out.entry(s.key.clone()).or_insert(n);
    }
    out
}

/// How the size of backup `n` is shown: its bytes depend on the machine.
pub fn size_label(n: usize) -> String {
    format!("[size of backup-{n}]")
}

/// The timestamp part of a backup key (`backups/<category>/<timestamp>.tar.gz`).
fn key_timestamp(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let stem = &name[..name.find(".tar")?];
    (stem.len() >= 15 && stem.contains('T')).then_some(stem)
}

/// Registers the per-backup names and the work directory with `redactor`.
pub fn register(redactor: &mut Redactor, runs: &[AgentRun], work: &Path) {
    redactor.literal(&work.display().to_string(), "[work]");
    let labels = backup_labels(runs);
    for r in runs {
        if let Some(s) = r.stored() {
            let n = labels.get(&s.key).copied().unwrap_or(0);
            if let Some(ts) = key_timestamp(&s.key) {
                redactor.literal(ts, &format!("[backup-{n}]"));
            }
            redactor.literal(&s.sha256, &format!("[sha256 of backup-{n}]"));
            redactor.literal(&s.crc64nvme, &format!("[crc64 of backup-{n}]"));
        }
        if let RunKind::Cost {
            analysis: Some(a), ..
        } = &r.what
        {
            redactor.literal(&a.time.format("%Y-%m-%d %H:%M").to_string(), "[time]");
        }
    }
}

fn check_line(c: &Check) -> String {
    match c {
        Check::Insufficient { have, need } => {
            format!("not judged ({have} earlier runs, {need} needed)")
        }
        Check::Normal(f) => format!(
            "normal (within mean ± {}σ of {} earlier runs)",
            f.sigma, f.n
        ),
        Check::Anomaly(f) => {
            let ratio = if f.mean > 0.0 {
                format!("{:.1}x", f.current / f.mean)
            } else {
                "n/a".into()
            };
            format!(
                "ANOMALY {}: {ratio} the mean of {} earlier runs, outside mean ± {}σ",
                match f.direction {
                    Some(Direction::Below) => "below",
                    _ => "above",
                },
                f.n,
                f.sigma
            )
        }
    }
}

/// The `agent runs:` section.
pub fn runs_section(runs: &[AgentRun]) -> String {
    let labels = backup_labels(runs);
    let size_of = |key: &str| match labels.get(key) {
        Some(n) => size_label(*n),
        None => "?".into(),
    };
    let mut out = String::from("\nagent runs:\n");
    if runs.is_empty() {
        out.push_str("  none\n");
    }
    for (i, r) in runs.iter().enumerate() {
        let head = match &r.what {
            RunKind::Backup {
                category,
                source,
                keep,
                ..
            } => format!("backup {source} -> {category}, keep {keep}"),
            RunKind::Restore { category, at, .. } => format!("restore {category} at {at}"),
            RunKind::Cost { category, .. } => format!("cost {category}"),
        };
        out.push_str(&format!(
            "  {}. {head} (line {}): exit {}\n",
            i + 1,
            r.line,
            r.exit
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("     error: {e}\n"));
        }
        match &r.what {
            RunKind::Backup {
                summary: Some(s), ..
            } => {
                out.push_str(&format!(
                    "     stored {} ({}): {:?}, {} part(s), {} files, {} bytes uncompressed\n",
                    s.key,
                    size_of(&s.key),
                    s.method,
                    s.parts,
                    s.files,
                    s.uncompressed_bytes
                ));
                out.push_str(&format!("     s3 checksum: {}\n", s.s3_checksum.describe()));
                out.push_str(&format!("     kept {}\n", s.kept));
                for d in &s.deleted {
                    out.push_str(&format!("     deleted {d}\n"));
                }
                for line in &s.rotation {
                    out.push_str(&format!("     rotation: {line}\n"));
                }
                out.push_str(&format!("     size check: {}\n", check_line(&s.size_check)));
                out.push_str(&format!(
                    "     duration check: {}\n",
                    check_line(&s.duration_check)
                ));
            }
            RunKind::Restore {
                restored: Some(x),
                compared_with,
                ..
            } => {
                out.push_str(&format!(
                    "     restored {} ({}): {} files, {} dirs, {} symlinks, {} bytes; {}\n",
                    x.key,
                    size_of(&x.key),
                    x.unpacked.files,
                    x.unpacked.dirs,
                    x.unpacked.symlinks,
                    x.unpacked.bytes,
                    x.verified
                ));
                if let Some((name, t)) = compared_with {
                    out.push_str(&format!(
                        "     identical to tree {name} ({} files, {} dirs, {} symlinks, {} bytes): names, types, modes, bytes\n",
                        t.files, t.dirs, t.symlinks, t.bytes
                    ));
                }
            }
            RunKind::Cost {
                analysis: Some(a), ..
            } => {
                for line in autobackup_agent::cost::report::table(a).lines() {
                    out.push_str(&format!("     | {line}\n").replace(" \n", "\n"));
                }
            }
            _ => {}
        }
    }
    out
}

struct Rule {
    re: Regex,
    with: &'static str,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let r = |re: &str, with| Rule {
            re: Regex::new(re).expect("valid regex"),
            with,
        };
        vec![
            // "100.5 KiB (102912 bytes)": an archive size or a figure derived from sizes.
            r(r"\d+(\.\d+)? (B|KiB|MiB|GiB|TiB) \(\d+ bytes\)", "[size]"),
            // The success subject: "OK documents: 100.5 KiB in 0s".
            r(
                r": \d+(\.\d+)? (B|KiB|MiB|GiB|TiB) in \d+s",
                ": [size] in [secs]s",
            ),
            r(
                r"\d+\.\d+ s \(\d+\.\d+ MB/s of source\)",
                "[secs] s ([rate] MB/s of source)",
            ),
            r(r"([+-])\d+\.\d+σ", "${1}[z]σ"),
        ]
    })
}

/// Replaces the machine- and time-dependent figures of an agent notification.
pub fn normalise_notification(text: &str) -> String {
    let mut out = text.to_string();
    for rule in rules() {
        out = rule.re.replace_all(&out, rule.with).into_owned();
    }
    out
}

/// The `agent notifications:` section: (event, subject, message) as received.
pub fn notifications_section(received: &[(String, String, String)]) -> String {
    let mut items: Vec<(String, String, String)> = received
        .iter()
        .map(|(event, subject, message)| {
            (
                normalise_notification(subject),
                event.clone(),
                normalise_notification(message),
            )
        })
        .collect();
    // Subjects first (the kind), then the body: its key's timestamp orders the runs.
    items.sort();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, event, _) in &items {
        *counts.entry(event.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut out = format!(
        "\nagent notifications received: {}{}\n",
        items.len(),
        if summary.is_empty() {
            String::new()
        } else {
            format!(" ({})", summary.join(", "))
        }
    );
    for (subject, event, message) in items {
        out.push_str(&format!("  - {event}: {subject}\n"));
        for line in message.lines() {
            out.push_str(&format!("      | {line}\n").replace(" \n", "\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::archive_size(
        "Size:        100.5 KiB (102912 bytes), 100.0 KiB uncompressed in 8 files",
        "Size:        [size], 100.0 KiB uncompressed in 8 files"
    )]
    #[case::subject(
        "[autobackup] OK documents: 100.5 KiB in 0s",
        "[autobackup] OK documents: [size] in [secs]s"
    )]
    #[case::duration(
        "Duration:    0.1 s (12.3 MB/s of source)",
        "Duration:    [secs] s ([rate] MB/s of source)"
    )]
    #[case::deviation("Deviation:  +9.87σ", "Deviation:  +[z]σ")]
    #[case::negative_deviation("Deviation:  -1.52σ", "Deviation:  -[z]σ")]
    #[case::threshold(
        "Threshold:  mean ± 2σ (with floors) = [98.0 KiB (100352 bytes), 102.0 KiB (104448 bytes)]",
        "Threshold:  mean ± 2σ (with floors) = [[size], [size]]"
    )]
    #[case::untouched("Backups kept: 5 (deleted now: 1)", "Backups kept: 5 (deleted now: 1)")]
    fn notification_figures(#[case] text: &str, #[case] want: &str) {
        assert_eq!(normalise_notification(text), want);
    }

    #[test]
    fn timestamps_of_keys() {
        assert_eq!(
            key_timestamp("backups/documents/20261122T051015.123Z.tar.gz"),
            Some("20261122T051015.123Z")
        );
        assert_eq!(key_timestamp("backups/documents/x.tar.gz"), None);
    }

    #[test]
    fn notifications_are_counted_and_sorted() {
        let s = notifications_section(&[
            (
                "success".into(),
                "[autobackup] OK documents: 1.0 KiB in 0s".into(),
                "b2\n".into(),
            ),
            (
                "anomaly".into(),
                "[autobackup] ANOMALY backup documents: size above normal".into(),
                "a\n".into(),
            ),
            (
                "success".into(),
                "[autobackup] OK documents: 1.1 KiB in 1s".into(),
                "b1\n".into(),
            ),
        ]);
        assert_eq!(
            s,
            "\nagent notifications received: 3 (anomaly 1, success 2)\n\
             \x20 - anomaly: [autobackup] ANOMALY backup documents: size above normal\n\
             \x20     | a\n\
             \x20 - success: [autobackup] OK documents: [size] in [secs]s\n\
             \x20     | b1\n\
             \x20 - success: [autobackup] OK documents: [size] in [secs]s\n\
             \x20     | b2\n"
        );
    }
}
