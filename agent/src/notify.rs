//! Notifications: the text of success, failure and anomaly messages (pure), and sending
//! them to SNS. Without a topic (`--topic-arn` / `SNS_TOPIC_ARN`) messages are only logged,
//! and the log says so. A notification that cannot be published is logged as an error but
//! never changes the outcome of the run it reports on.
//!
//! SNS refuses messages over 256 KB (262,144 bytes, attributes included), and a failure
//! can carry thousands of errors (a rotation that failed for every key), so every body is
//! capped ([`cap_message`], at a UTF-8 boundary) at [`BODY_MAX`]; the cap says how many
//! lines and bytes it left out, and the log has the full text.
//!
//! Floor 1: may import modules of floors 0 to 0 only; it imports `anomaly`, `units`.

use serde::Serialize;

use crate::anomaly::{suggested_action, Direction, Finding};
use crate::units;

/// SNS subjects: ASCII, no control characters, under 100 characters.
pub const SUBJECT_MAX: usize = 99;

/// SNS's limit for a whole message: 256 KB.
pub const SNS_MAX: usize = 262_144;
/// The most bytes of a body the agent publishes: SNS's limit less room for the subject
/// and the message attributes.
pub const BODY_MAX: usize = SNS_MAX - 4096;

/// `body` cut to at most `max` bytes (for a `max` of a few hundred bytes or more) at a
/// UTF-8 character boundary (a line boundary when one is near), ending with a line that
/// says how many lines and bytes were left out. Bodies within `max` are returned unchanged.
pub fn cap_message(body: &str, max: usize) -> String {
    if body.len() <= max {
        return body.to_string();
    }
    // Room for the notice (its numbers have at most 20 digits each).
    let notice_room = 160;
    let mut cut = max.saturating_sub(notice_room);
    while cut > 0 && !body.is_char_boundary(cut) {
        cut -= 1;
    }
    // Prefer to end on a whole line if one ends in the last 4 KiB before the cut.
    if let Some(nl) = body[..cut].rfind('\n') {
        if cut - nl <= 4096 {
            cut = nl + 1;
        }
    }
    let (kept, rest) = body.split_at(cut);
    let lines = rest.lines().count();
    let mut out = String::with_capacity(max);
    out.push_str(kept);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "[... {lines} more line(s), {} bytes elided: SNS accepts at most 256 KB; the log has the full text]\n",
        rest.len()
    ));
    out
}

/// The SNS message attribute naming who sent a notification (`autobackup-agent`), so a
/// subscription can filter the agent's messages from the failure-notifier's on a shared topic.
pub const SENDER_ATTRIBUTE: &str = "sender";
/// Its value.
pub const SENDER: &str = "autobackup-agent";
/// The SNS message attribute naming the kind of notification ([`Event::as_str`]).
pub const EVENT_ATTRIBUTE: &str = "event";

/// What a notification reports; sent as the `event` message attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    Success,
    Failure,
    Anomaly,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Success => "success",
            Event::Failure => "failure",
            Event::Anomaly => "anomaly",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub event: Event,
    pub subject: String,
    pub body: String,
}

fn subject(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if clean.len() <= SUBJECT_MAX {
        clean
    } else {
        format!("{}...", &clean[..SUBJECT_MAX - 3])
    }
}

/// The first `shown` items joined with `; `, then how many more there are (for error
/// texts that would otherwise list thousands of keys; log the full list).
pub fn join_some(items: &[String], shown: usize) -> String {
    let mut s = items
        .iter()
        .take(shown)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > shown {
        s.push_str(&format!(
            "; ... and {} more (the log lists them all)",
            items.len() - shown
        ));
    }
    s
}

/// Facts of a successful backup.
#[derive(Debug, Clone, Serialize)]
pub struct Success {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub bytes: u64,
    pub uncompressed_bytes: u64,
    pub files: u64,
    pub duration_secs: f64,
    pub kept: usize,
    pub deleted: usize,
    pub sha256: String,
    pub s3_check: String,
    pub rotation: Vec<String>,
    /// The intermediate version of a sealed upload left as a noncurrent version.
    #[serde(default)]
    pub intermediate_version: Option<String>,
    /// Entries that vanished or were unreadable during the walk, and were not archived.
    #[serde(default)]
    pub not_archived: Vec<String>,
}

/// How many skipped entries a notification names before it only counts.
const NOT_ARCHIVED_SHOWN: usize = 10;

pub fn success(category: &str, s: &Success) -> Message {
    let mut b = String::new();
    b.push_str(&format!("Backup of {category} succeeded.\n\n"));
    b.push_str(&format!("Bucket:      {}\n", s.bucket));
    b.push_str(&format!("Key:         {}\n", s.key));
    if let Some(v) = &s.version_id {
        b.push_str(&format!("Version:     {v}\n"));
    }
    b.push_str(&format!(
        "Size:        {} ({} bytes), {} uncompressed in {} files\n",
        units::bytes(s.bytes),
        s.bytes,
        units::bytes(s.uncompressed_bytes),
        s.files
    ));
    b.push_str(&format!(
        "Duration:    {:.1} s ({:.1} MB/s of source)\n",
        s.duration_secs,
        units::mb_per_s(s.uncompressed_bytes, s.duration_secs)
    ));
    b.push_str(&format!(
        "Backups kept: {} (deleted now: {})\n",
        s.kept, s.deleted
    ));
    b.push_str(&format!("SHA-256:     {}\n", s.sha256));
    b.push_str(&format!("S3 checksum: {}\n", s.s3_check));
    for line in &s.rotation {
        b.push_str(&format!("Rotation:    {line}\n"));
    }
    if let Some(v) = &s.intermediate_version {
        b.push_str(&format!(
            "Leftover:    intermediate version {v} stays as a noncurrent version until the lifecycle rule expires it\n"
        ));
    }
    if !s.not_archived.is_empty() {
        b.push_str(&format!(
            "Not archived: {} entries vanished or were unreadable during the walk\n",
            s.not_archived.len()
        ));
        for p in s.not_archived.iter().take(NOT_ARCHIVED_SHOWN) {
            b.push_str(&format!("  - {p}\n"));
        }
        if s.not_archived.len() > NOT_ARCHIVED_SHOWN {
            b.push_str(&format!(
                "  - ... and {} more (see the log)\n",
                s.not_archived.len() - NOT_ARCHIVED_SHOWN
            ));
        }
    }
    Message {
        event: Event::Success,
        subject: subject(&format!(
            "[autobackup] OK {category}: {} in {:.0}s",
            units::bytes(s.bytes),
            s.duration_secs
        )),
        body: cap_message(&b, BODY_MAX),
    }
}

/// Facts of a failed run.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub command: String,
    pub stage: String,
    pub error: String,
    pub exit_code: u8,
    pub log_file: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
}

/// `short` names the run in the subject (a category, a bucket): subjects stay short and
/// readable, the body says `what` in full (source directory, restore target).
pub fn failure(short: &str, what: &str, f: &Failure) -> Message {
    let mut b = String::new();
    b.push_str(&format!("autobackup {} of {what} FAILED.\n\n", f.command));
    b.push_str(&format!("Stage:     {}\n", f.stage));
    b.push_str(&format!("Error:     {}\n", f.error));
    b.push_str(&format!("Exit code: {}\n", f.exit_code));
    if let Some(bucket) = &f.bucket {
        b.push_str(&format!("Bucket:    {bucket}\n"));
    }
    if let Some(k) = &f.key {
        b.push_str(&format!("Key:       {k}\n"));
    }
    b.push_str(&format!("Log:       {}\n", f.log_file));
    Message {
        event: Event::Failure,
        subject: subject(&format!(
            "[autobackup] FAILED {} {short}: {}",
            f.command, f.stage
        )),
        body: cap_message(&b, BODY_MAX),
    }
}

fn value(unit: &str, v: f64) -> String {
    match unit {
        "bytes" => format!("{} ({v:.0} bytes)", units::bytes_f(v)),
        "s" => format!("{v:.2} s"),
        "USD" => format!("${v:.4}"),
        other => format!("{v:.3} {other}"),
    }
}

/// An anomaly on one metric (`finding.direction` must be set).
pub fn anomaly(what: &str, key: Option<&str>, f: &Finding) -> Message {
    let dir = f.direction.unwrap_or(Direction::Above);
    let word = match dir {
        Direction::Above => "above",
        Direction::Below => "below",
    };
    let mut b = String::new();
    b.push_str(&format!(
        "Anomaly in {what}: {} is {word} its usual range.\n\n",
        f.metric
    ));
    if let Some(k) = key {
        b.push_str(&format!("Key:        {k}\n"));
    }
    b.push_str(&format!("Current:    {}\n", value(&f.unit, f.current)));
    b.push_str(&format!(
        "Mean:       {} over {} earlier run(s)\n",
        value(&f.unit, f.mean),
        f.n
    ));
    b.push_str(&format!("Std dev σ:  {}\n", value(&f.unit, f.std_dev)));
    match f.z {
        Some(z) => b.push_str(&format!("Deviation:  {z:+.2}σ\n")),
        None => b.push_str("Deviation:  history has no spread (σ = 0); judged against the floor\n"),
    }
    b.push_str(&format!(
        "Threshold:  mean ± {}σ (with floors) = [{}, {}]\n",
        f.sigma,
        value(&f.unit, f.lower),
        value(&f.unit, f.upper)
    ));
    b.push_str(&format!(
        "\nSuggested action: {}\n",
        suggested_action(&f.metric, dir)
    ));
    Message {
        event: Event::Anomaly,
        subject: subject(&format!(
            "[autobackup] ANOMALY {what}: {} {word} normal",
            f.metric
        )),
        body: cap_message(&b, BODY_MAX),
    }
}

/// The `sender` and `event` message attributes.
fn attributes(
    event: Event,
) -> std::collections::HashMap<String, aws_sdk_sns::types::MessageAttributeValue> {
    [
        (SENDER_ATTRIBUTE, SENDER),
        (EVENT_ATTRIBUTE, event.as_str()),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .ok()
            .map(|v| (name.to_string(), v))
    })
    .collect()
}

/// Where notifications go.
#[derive(Clone, Debug)]
pub struct Notifier {
    target: Option<(aws_sdk_sns::Client, String)>,
}

impl Notifier {
    pub fn new(sns: Option<aws_sdk_sns::Client>, topic_arn: Option<String>) -> Notifier {
        let topic = topic_arn
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Notifier {
            target: sns.zip(topic),
        }
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Logs one line saying where notifications go.
    pub fn announce(&self) {
        match &self.target {
            Some((_, arn)) => tracing::info!(topic = %arn, "notifications go to SNS"),
            None => tracing::info!("notifications are disabled (no --topic-arn / SNS_TOPIC_ARN): messages are only logged"),
        }
    }

    /// Publishes (or logs) a message; returns whether SNS accepted it.
    pub async fn send(&self, m: &Message) -> bool {
        let Some((sns, arn)) = &self.target else {
            tracing::info!(subject = %m.subject, "notification (not sent, no topic):\n{}", m.body);
            return false;
        };
        match sns
            .publish()
            .topic_arn(arn)
            .subject(&m.subject)
            .message(cap_message(&m.body, BODY_MAX))
            .set_message_attributes(Some(attributes(m.event)))
            .send()
            .await
        {
            Ok(r) => {
                tracing::info!(subject = %m.subject, message_id = r.message_id().unwrap_or(""), "notification sent");
                true
            }
            Err(e) => {
                tracing::error!(subject = %m.subject, error = %crate::aws::classify(&e).text(), "could not publish the notification:\n{}", m.body);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anomaly::{check, Floor, Side, Thresholds};

    #[test]
    fn subjects_are_sns_safe() {
        let s = subject(&format!("ünï\n{}", "x".repeat(200)));
        assert!(s.len() <= SUBJECT_MAX);
        assert!(s.is_ascii() && !s.chars().any(|c| c.is_ascii_control()));
        assert!(s.ends_with("..."));
    }

    #[test]
    fn success_message_has_the_facts() {
        let m = success(
            "documents",
            &Success {
                bucket: "b".into(),
                key: "backups/documents/k.tar.gz".into(),
                version_id: Some("v1".into()),
                bytes: 2048,
                uncompressed_bytes: 10_000,
                files: 4,
                duration_secs: 1.25,
                kept: 5,
                deleted: 1,
                sha256: "ab".into(),
                s3_check: "ok".into(),
                rotation: vec!["versioning is enabled".into()],
                intermediate_version: None,
                not_archived: vec![],
            },
        );
        assert!(m.subject.starts_with("[autobackup] OK documents"));
        for needle in [
            "Bucket:      b",
            "backups/documents/k.tar.gz",
            "2.0 KiB",
            "4 files",
            "1.2 s",
            "Backups kept: 5",
            "versioning is enabled",
        ] {
            assert!(m.body.contains(needle), "{needle} missing in\n{}", m.body);
        }
    }

    #[test]
    fn failure_message_names_stage_error_and_log() {
        let m = failure(
            "media",
            "media (/srv/media)",
            &Failure {
                command: "backup".into(),
                stage: "pre-flight: bucket".into(),
                error: "bucket x does not exist".into(),
                exit_code: 6,
                log_file: "/var/log/autobackup.log".into(),
                bucket: Some("x".into()),
                key: None,
            },
        );
        assert!(m
            .subject
            .contains("FAILED backup media: pre-flight: bucket"));
        assert!(m.body.contains("of media (/srv/media) FAILED"));
        assert!(m.body.contains("Log:       /var/log/autobackup.log"));
        assert!(m.body.contains("Exit code: 6"));
    }

    #[test]
    fn anomaly_message_explains_the_numbers() {
        let c = check(
            "size",
            "bytes",
            &[1000.0, 1100.0, 900.0],
            10.0,
            &Thresholds::default(),
            Side::Both,
            Floor::NONE,
        );
        let crate::anomaly::Check::Anomaly(f) = c else {
            panic!("expected an anomaly")
        };
        let m = anomaly("backup documents", Some("k"), &f);
        assert!(m
            .subject
            .contains("ANOMALY backup documents: size below normal"));
        for needle in [
            "Current:",
            "Mean:",
            "over 3 earlier run(s)",
            "Std dev",
            "-9.90σ",
            "mean ± 2σ",
            "Suggested action",
            "smaller",
        ] {
            assert!(m.body.contains(needle), "{needle} missing in\n{}", m.body);
        }
    }

    #[tokio::test]
    async fn without_a_topic_nothing_is_sent() {
        let n = Notifier::new(None, Some("arn:aws:sns:us-east-1:000000000000:t".into()));
        assert!(!n.enabled());
        assert!(
            !n.send(&Message {
                event: Event::Success,
                subject: "s".into(),
                body: "b".into()
            })
            .await
        );
        let n = Notifier::new(None, Some("  ".into()));
        assert!(!n.enabled());
    }

    #[test]
    fn success_message_counts_entries_not_archived() {
        let mut s = Success {
            bucket: "b".into(),
            key: "k".into(),
            version_id: None,
            bytes: 1,
            uncompressed_bytes: 1,
            files: 1,
            duration_secs: 1.0,
            kept: 1,
            deleted: 0,
            sha256: "ab".into(),
            s3_check: "ok".into(),
            rotation: vec![],
            intermediate_version: None,
            not_archived: vec![],
        };
        assert!(!success("media", &s).body.contains("Not archived"));
        s.not_archived = (0..12).map(|i| format!("gone{i}")).collect();
        let body = success("media", &s).body;
        assert!(body.contains("Not archived: 12 entries"), "{body}");
        assert!(body.contains("gone9") && !body.contains("gone10"));
        assert!(body.contains("and 2 more"));
    }

    /// Finding 31: a failure with 10^4 errors stays within SNS's 256 KB and says how much
    /// was left out.
    #[test]
    fn a_failure_with_ten_thousand_errors_fits_in_one_sns_message() {
        let errors: Vec<String> = (0..10_000)
            .map(|i| format!("backups/documents/2026{i:08}T000000.000Z.tar.gz: AccessDenied: Access Denied ü"))
            .collect();
        let m = failure(
            "documents",
            "documents (/srv/docs)",
            &Failure {
                command: "backup".into(),
                stage: "rotation".into(),
                error: errors.join("\n"),
                exit_code: 13,
                log_file: "/var/log/autobackup.log".into(),
                bucket: Some("b".into()),
                key: None,
            },
        );
        assert!(m.body.len() <= SNS_MAX, "{} bytes", m.body.len());
        assert!(m.body.len() + m.subject.len() + 200 <= SNS_MAX);
        assert!(m
            .body
            .starts_with("autobackup backup of documents (/srv/docs) FAILED."));
        let notice = m.body.lines().last().unwrap();
        assert!(
            notice.contains("more line(s)") && notice.contains("bytes elided"),
            "{notice}"
        );
        // The notice counts what is missing: the shown lines plus the elided ones are all.
        let elided: usize = notice
            .trim_start_matches("[... ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let shown = m
            .body
            .lines()
            .filter(|l| l.contains("AccessDenied"))
            .count();
        // The error lines, then Exit code, Bucket and Log lines.
        assert_eq!(shown + elided, 10_000 + 3, "{shown} + {elided}");
    }

    #[test]
    fn cap_message_cuts_at_a_character_boundary() {
        let body = "é".repeat(1000);
        for max in [0, 1, 161, 162, 163, 500, 1999] {
            let c = cap_message(&body, max);
            assert!(c.len() <= max.max(160) + 200);
            assert!(c.contains("bytes elided"));
        }
        assert_eq!(cap_message("short", 100), "short");
        let c = cap_message(&body, 1000);
        assert!(c.len() <= 1000, "{}", c.len());
    }

    #[test]
    fn join_some_counts_what_it_leaves_out() {
        let items: Vec<String> = (0..10_000).map(|i| format!("k{i}: AccessDenied")).collect();
        let s = join_some(&items, 20);
        assert!(s.starts_with("k0: AccessDenied; k1: AccessDenied"));
        assert!(s.contains("k19:") && !s.contains("k20:"));
        assert!(
            s.ends_with("... and 9980 more (the log lists them all)"),
            "{s}"
        );
        assert_eq!(
            join_some(&items[..2], 20),
            "k0: AccessDenied; k1: AccessDenied"
        );
    }
}
