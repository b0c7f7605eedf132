//! Every error the agent reports, with the context needed to act on it, and the exit code
//! each one maps to.
//!
//! Exit codes (also printed by `autobackup --help`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (anomalies are reported and notified, but do not fail a run) |
//! | 1 | unexpected internal error |
//! | 2 | invalid command line or configuration |
//! | 3 | source directory missing, not a directory or unreadable |
//! | 4 | the S3 endpoint (local engine or AWS) does not answer |
//! | 5 | no credentials found, or the endpoint rejects them |
//! | 6 | the bucket does not exist |
//! | 7 | the bucket exists but access is denied (or it lives in another region) |
//! | 8 | reading the tree or streaming the archive into S3 failed |
//! | 9 | checksum mismatch: S3 or the restore saw bytes other than the ones backed up |
//! | 10 | restore target exists and is not empty (pass `--force`) |
//! | 11 | no backup matches (empty prefix, unknown key or version) |
//! | 12 | a local file (history, prices, log, chart) cannot be read or written |
//! | 13 | the backup is stored but rotation failed |
//! | 14 | another S3 or SNS call failed |
//! | 15 | unpacking the downloaded archive failed, or it exceeded an unpack limit |
//! | 130 | stopped by SIGINT (after aborting uploads / removing restore staging) |
//! | 143 | stopped by SIGTERM (likewise) |
//!
//! A failure whose cleanup (removing a restore's staging tree) also failed keeps the exit
//! code of the original failure and names the path left behind.
//!
//! Floor 1: may import modules of floors 0 to 0 only; it imports `signals::signal`.

use std::path::PathBuf;

/// Exit codes with a one-line meaning, in the order of the table above.
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "success (anomalies are notified but do not fail the run)",
    ),
    (1, "unexpected internal error"),
    (2, "invalid command line or configuration"),
    (3, "source directory missing, not a directory or unreadable"),
    (4, "the S3 endpoint does not answer"),
    (5, "no credentials found, or the endpoint rejects them"),
    (6, "the bucket does not exist"),
    (
        7,
        "access to the bucket denied (or it is in another region)",
    ),
    (
        8,
        "reading the tree or streaming the archive into S3 failed",
    ),
    (9, "checksum mismatch (S3 or restore saw different bytes)"),
    (10, "restore target exists and is not empty (use --force)"),
    (11, "no backup matches"),
    (12, "a local file (history, prices, log, chart) failed"),
    (13, "backup stored but rotation failed"),
    (14, "another S3 or SNS call failed"),
    (
        15,
        "unpacking the downloaded archive failed (or exceeded an unpack limit)",
    ),
    (
        130,
        "stopped by SIGINT (uploads aborted, restore staging removed)",
    ),
    (
        143,
        "stopped by SIGTERM (uploads aborted, restore staging removed)",
    ),
];

/// The exit-code table as text for `--help`.
pub fn exit_code_help() -> String {
    let mut s = String::from("Exit codes:\n");
    for (code, what) in EXIT_CODES {
        s.push_str(&format!("  {code:>3}  {what}\n"));
    }
    s
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("internal error: {0}")]
    Internal(String),

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error("source {}: {why}", path.display())]
    Source { path: PathBuf, why: String },

    #[error("endpoint {endpoint} does not answer: {why}")]
    Unreachable { endpoint: String, why: String },

    #[error("credentials: {why}")]
    Credentials { why: String },

    #[error("bucket {bucket} does not exist (create it first; the agent never guesses another)")]
    NoBucket { bucket: String },

    #[error("bucket {bucket}: {why}")]
    BucketDenied { bucket: String, why: String },

    #[error("archiving {}: {why}", path.display())]
    Archive { path: PathBuf, why: String },

    /// The archive stopped because its reader (the uploader) went away: a consequence,
    /// never the cause; the uploader reports its own error instead.
    #[error("archiving {}: the uploader stopped reading", path.display())]
    ArchiveAbandoned { path: PathBuf },

    #[error("upload of s3://{bucket}/{key} failed at {step}: {why}")]
    Upload {
        bucket: String,
        key: String,
        step: &'static str,
        why: String,
    },

    #[error("checksum mismatch for {what}: expected {expected}, got {actual}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("restore target {} exists and is not empty; pass --force to replace it", path.display())]
    TargetExists { path: PathBuf },

    #[error("restore target {} is a symbolic link (to {}); restore to the directory it names, or remove the link", path.display(), to.display())]
    TargetIsLink { path: PathBuf, to: PathBuf },

    #[error("no backup found: {what}")]
    NotFound { what: String },

    #[error("{what} {}: {why}", path.display())]
    LocalFile {
        what: &'static str,
        path: PathBuf,
        why: String,
    },

    #[error("rotation under s3://{bucket}/{prefix} failed: {why}")]
    Rotation {
        bucket: String,
        prefix: String,
        why: String,
    },

    #[error("{service} {op} on {target} failed: {why}")]
    Aws {
        service: &'static str,
        op: &'static str,
        target: String,
        why: String,
    },

    #[error("unpacking {key} into {}: {why}", path.display())]
    Unpack {
        key: String,
        path: PathBuf,
        why: String,
    },

    /// A restore stopped because the archive exceeded one of the unpack limits.
    #[error("unpacking {key}: {what} exceeds the limit of {max}; raise it with {flag} if the archive is trusted")]
    UnpackLimit {
        key: String,
        /// What was counted, e.g. "the entry count".
        what: String,
        max: u64,
        /// The command-line flag that raises the limit.
        flag: &'static str,
    },

    /// A signal stopped the command (see [`crate::signals`]); what it had started was
    /// cleaned up as far as the grace period allowed.
    #[error("interrupted by {signal}")]
    Interrupted { signal: crate::signals::Signal },

    /// `error` happened, and removing what it left behind failed too.
    #[error("{error}; cleaning up {} also failed: {why} (remove it by hand)", path.display())]
    Cleanup {
        error: Box<AgentError>,
        path: PathBuf,
        why: String,
    },
}

impl AgentError {
    /// The process exit code for this error (see the module table).
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Internal(_) => 1,
            AgentError::Config(_) => 2,
            AgentError::Source { .. } => 3,
            AgentError::Unreachable { .. } => 4,
            AgentError::Credentials { .. } => 5,
            AgentError::NoBucket { .. } => 6,
            AgentError::BucketDenied { .. } => 7,
            AgentError::Archive { .. }
            | AgentError::ArchiveAbandoned { .. }
            | AgentError::Upload { .. } => 8,
            AgentError::Checksum { .. } => 9,
            AgentError::TargetExists { .. } | AgentError::TargetIsLink { .. } => 10,
            AgentError::NotFound { .. } => 11,
            AgentError::LocalFile { .. } => 12,
            AgentError::Rotation { .. } => 13,
            AgentError::Aws { .. } => 14,
            AgentError::Unpack { .. } | AgentError::UnpackLimit { .. } => 15,
            AgentError::Interrupted { signal } => signal.exit_code(),
            AgentError::Cleanup { error, .. } => error.exit_code(),
        }
    }

    /// The stage a failure notification names.
    pub fn stage(&self) -> &'static str {
        match self {
            AgentError::Internal(_) => "internal",
            AgentError::Config(_) => "configuration",
            AgentError::Source { .. } => "pre-flight: source",
            AgentError::Unreachable { .. } => "pre-flight: endpoint",
            AgentError::Credentials { .. } => "pre-flight: credentials",
            AgentError::NoBucket { .. } | AgentError::BucketDenied { .. } => "pre-flight: bucket",
            AgentError::Archive { .. } | AgentError::ArchiveAbandoned { .. } => "archive",
            AgentError::Upload { .. } => "upload",
            AgentError::Checksum { .. } => "checksum verification",
            AgentError::TargetExists { .. } | AgentError::TargetIsLink { .. } => "restore target",
            AgentError::NotFound { .. } => "lookup",
            AgentError::LocalFile { .. } => "local file",
            AgentError::Rotation { .. } => "rotation",
            AgentError::Aws { .. } => "aws call",
            AgentError::Unpack { .. } | AgentError::UnpackLimit { .. } => "unpack",
            AgentError::Interrupted { .. } => "interrupted",
            AgentError::Cleanup { error, .. } => error.stage(),
        }
    }

    pub fn local(what: &'static str, path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        AgentError::LocalFile {
            what,
            path: path.into(),
            why: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<AgentError> {
        let p = PathBuf::from("/x");
        let s = || "why".to_string();
        vec![
            AgentError::Internal(s()),
            AgentError::Config(s()),
            AgentError::Source {
                path: p.clone(),
                why: s(),
            },
            AgentError::Unreachable {
                endpoint: s(),
                why: s(),
            },
            AgentError::Credentials { why: s() },
            AgentError::NoBucket { bucket: s() },
            AgentError::BucketDenied {
                bucket: s(),
                why: s(),
            },
            AgentError::Archive {
                path: p.clone(),
                why: s(),
            },
            AgentError::ArchiveAbandoned { path: p.clone() },
            AgentError::Checksum {
                what: s(),
                expected: s(),
                actual: s(),
            },
            AgentError::TargetExists { path: p.clone() },
            AgentError::NotFound { what: s() },
            AgentError::LocalFile {
                what: "history",
                path: p.clone(),
                why: s(),
            },
            AgentError::Rotation {
                bucket: s(),
                prefix: s(),
                why: s(),
            },
            AgentError::Aws {
                service: "S3",
                op: "HeadBucket",
                target: s(),
                why: s(),
            },
            AgentError::Unpack {
                key: s(),
                path: p.clone(),
                why: s(),
            },
            AgentError::UnpackLimit {
                key: s(),
                what: s(),
                max: 1,
                flag: "--max-entries",
            },
            AgentError::Cleanup {
                error: Box::new(AgentError::NotFound { what: s() }),
                path: p,
                why: s(),
            },
            AgentError::Interrupted {
                signal: crate::signals::Signal::Interrupt,
            },
            AgentError::Interrupted {
                signal: crate::signals::Signal::Terminate,
            },
        ]
    }

    #[test]
    fn a_failed_cleanup_keeps_the_original_code_and_stage() {
        let e = AgentError::Cleanup {
            error: Box::new(AgentError::Checksum {
                what: "x".into(),
                expected: "a".into(),
                actual: "b".into(),
            }),
            path: PathBuf::from("/t/.x.autobackup-partial-1"),
            why: "Permission denied".into(),
        };
        assert_eq!(e.exit_code(), 9);
        assert_eq!(e.stage(), "checksum verification");
        let text = e.to_string();
        assert!(
            text.contains("checksum mismatch") && text.contains("autobackup-partial-1"),
            "{text}"
        );
    }

    #[test]
    fn every_error_code_is_documented_and_codes_are_distinct_per_kind() {
        let documented: Vec<u8> = EXIT_CODES.iter().map(|(c, _)| *c).collect();
        let mut seen = std::collections::BTreeSet::new();
        for e in one_of_each() {
            let code = e.exit_code();
            assert!(
                documented.contains(&code),
                "{e}: code {code} not documented"
            );
            seen.insert(code);
        }
        // Every documented non-zero code except clap's usage code 2 and success is produced by some error.
        for code in documented.iter().filter(|c| **c != 0) {
            assert!(
                seen.contains(code),
                "documented code {code} is never produced"
            );
        }
    }

    #[test]
    fn help_text_lists_every_code() {
        let help = exit_code_help();
        for (code, what) in EXIT_CODES {
            assert!(help.contains(&format!("{code:>3}  {what}")));
        }
    }
}
