//! Parsing an SQS message body into the S3 object it announces.
//!
//! Accepts the EventBridge `Object Created` event (what the topology routes) and the classic
//! S3 notification (`Records[].s3`).
//!
//! Key encoding: AWS documents form encoding for classic S3 notifications (`red flower.jpg`
//! -> `red+flower.jpg`, S3 User Guide, "Event message structure") and documents none for
//! EventBridge ("EventBridge event message structure"); the best evidence for EventBridge
//! (an AWS Solutions Library project fixed on AWS) is that `+` stays a literal plus. So each
//! event carries its [`ObjectEvent::key_candidates`]: the likely decoding for its source
//! first, then the others; the handler uses the first one under which the event's version
//! exists, and says so.
//!
//! Floor 0: imports nothing of the crate.

use std::time::Duration;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3EventRecord;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most records one body may announce. S3 publishes one event per notification message
/// (the `Records` array of the message structure holds that one record: S3 User Guide,
/// "Event message structure",
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>),
/// and an EventBridge event announces one object. A body with more was not sent by S3; each
/// record costs S3 calls and may be re-queued, so a body over the cap is
/// [`MalformedEvent::TooManyRecords`] instead of work multiplied by a sender.
pub const MAX_RECORDS_PER_BODY: usize = 10;

/// How far in the future an event's time may lie. S3 stamps `eventTime` when it "finished
/// processing the request" (S3 User Guide, "Event message structure", above), and
/// EventBridge's `time` is when the event happened (EventBridge User Guide, "Amazon
/// EventBridge events",
/// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html>): both
/// are in the past by the time the validator reads them. A signed AWS request must itself
/// "reach AWS within five minutes of the time stamp in the request" (IAM User Guide, "AWS
/// Signature Version 4 for API requests",
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html>), so clocks that
/// disagree by more cannot call AWS at all; 15 minutes is generous. A later time is
/// [`MalformedEvent::FutureEventTime`]: it would start a lag budget that never runs out.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// One object version announced by an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectEvent {
    pub bucket: String,
    /// The real object key: the most likely decoding (the first candidate).
    pub key: String,
    /// Every distinct reading of the key as it arrived, most likely first ([`key_candidates`]).
    pub key_candidates: Vec<String>,
    /// Absent when the event carries none: S3 sends `version-id` only for a versioned
    /// bucket (S3 User Guide, "EventBridge event message structure":
    /// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>); the
    /// validator then judges the current version and says so.
    pub version_id: Option<String>,
    pub size: Option<i64>,
    pub etag: Option<String>,
    /// When S3 says the object was created: the start of the lag budget.
    pub time: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// A message body announcing this object alone, for re-queueing it without the other
    /// records of its body: the body itself when it announces one object, else
    /// `{"Records":[<this record as received>]}`.
    #[serde(skip)]
    pub record_body: String,
}

/// Why a body is not an S3 object-created event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedEvent {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not an S3 object-created event: {0}")]
    NotAnS3Event(String),
    #[error("S3 event lacks `{0}`")]
    MissingField(&'static str),
    #[error("body announces {count} records; S3 sends one per message, and at most {max} are accepted (MAX_RECORDS_PER_BODY)")]
    TooManyRecords { count: usize, max: usize },
    #[error("event time {time} is {}s in the future, beyond the {}s allowed for clock skew: S3 and EventBridge stamp events when they happen, so no AWS service sent this one, and its lag budget would never run out", .ahead.as_secs(), MAX_CLOCK_SKEW.as_secs())]
    FutureEventTime {
        time: DateTime<Utc>,
        ahead: Duration,
    },
}

#[derive(Debug, Deserialize)]
struct S3Detail {
    bucket: DetailBucket,
    object: DetailObject,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DetailBucket {
    name: String,
}

#[derive(Debug, Deserialize)]
struct DetailObject {
    key: String,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default, rename = "version-id")]
    version_id: Option<String>,
}

/// Why a body that is not an object-created event still needs no action, if it is one of
/// those S3 sends: the `s3:TestEvent` message S3 publishes when a notification configuration
/// is saved ("Amazon S3 sends a test message", S3 User Guide, "Event message structure"),
/// and deletion events (EventBridge `Object Deleted`, classic `ObjectRemoved:*`), which
/// create no object to validate. Anything else is left to [`parse_body`].
pub fn acknowledged(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    if text(&value, "Event").as_deref() == Some("s3:TestEvent") {
        return Some(format!(
            "s3:TestEvent for bucket {}: sent by S3 when a notification configuration is saved",
            text(&value, "Bucket").unwrap_or_default()
        ));
    }
    if text(&value, "source").as_deref() == Some("aws.s3")
        && text(&value, "detail-type").as_deref() == Some("Object Deleted")
    {
        let detail = value.get("detail").cloned().unwrap_or_default();
        return Some(format!(
            "Object Deleted ({}) for {}/{}: nothing was created to validate",
            text(&detail, "deletion-type").unwrap_or_else(|| "deletion".into()),
            detail
                .pointer("/bucket/name")
                .and_then(|v| v.as_str())
                .unwrap_or_default(),
            detail
                .pointer("/object/key")
                .and_then(|v| v.as_str())
                .map(decode_event_key)
                .unwrap_or_default(),
        ));
    }
    let records = value.get("Records")?.as_array()?;
    let removed = !records.is_empty()
        && records.iter().all(|r| {
            text(r, "eventName").is_some_and(|n| {
                n.starts_with("ObjectRemoved") || n.starts_with("s3:ObjectRemoved")
            })
        });
    removed.then(|| {
        format!(
            "{} ObjectRemoved record(s): nothing was created to validate",
            records.len()
        )
    })
}

/// Parses one SQS body into the object versions it announces (one for EventBridge events,
/// one per record for S3 notifications, at most [`MAX_RECORDS_PER_BODY`]), judging event
/// times against the clock now.
pub fn parse_body(body: &str) -> Result<Vec<ObjectEvent>, MalformedEvent> {
    parse_body_at(body, Utc::now())
}

/// [`parse_body`] with the clock reading `now`: an event time more than
/// [`MAX_CLOCK_SKEW`] after `now` is [`MalformedEvent::FutureEventTime`].
pub fn parse_body_at(body: &str, now: DateTime<Utc>) -> Result<Vec<ObjectEvent>, MalformedEvent> {
    let events = parse_untimed(body)?;
    for event in &events {
        if let Some(time) = event.time {
            let ahead = (time - now).to_std().unwrap_or(Duration::ZERO);
            if ahead > MAX_CLOCK_SKEW {
                return Err(MalformedEvent::FutureEventTime { time, ahead });
            }
        }
    }
    Ok(events)
}

fn parse_untimed(body: &str) -> Result<Vec<ObjectEvent>, MalformedEvent> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| MalformedEvent::NotJson(e.to_string()))?;
    let Some(obj) = value.as_object() else {
        return Err(MalformedEvent::NotAnS3Event(format!(
            "top level is {}",
            json_kind(&value)
        )));
    };
    if obj.contains_key("detail-type") {
        let event: EventBridgeEvent<serde_json::Value> = serde_json::from_value(value.clone())
            .map_err(|e| MalformedEvent::NotAnS3Event(e.to_string()))?;
        if event.source != "aws.s3" || event.detail_type != "Object Created" {
            return Err(MalformedEvent::NotAnS3Event(format!(
                "source {:?}, detail-type {:?}",
                event.source, event.detail_type
            )));
        }
        let detail: S3Detail = serde_json::from_value(event.detail)
            .map_err(|e| MalformedEvent::NotAnS3Event(format!("detail: {e}")))?;
        if detail.bucket.name.is_empty() {
            return Err(MalformedEvent::MissingField("detail.bucket.name"));
        }
        if detail.object.key.is_empty() {
            return Err(MalformedEvent::MissingField("detail.object.key"));
        }
        let key_candidates = key_candidates(&detail.object.key, KeyEncoding::Percent);
        return Ok(vec![ObjectEvent {
            bucket: detail.bucket.name,
            key: key_candidates[0].clone(),
            key_candidates,
            version_id: detail
                .object
                .version_id
                .filter(|v| !v.is_empty() && v != "null"),
            size: detail.object.size,
            etag: detail.object.etag.filter(|e| !e.is_empty()),
            time: event.time,
            reason: detail.reason,
            record_body: body.to_string(),
        }]);
    }
    if let Some(records) = obj.get("Records") {
        let Some(records) = records.as_array() else {
            return Err(MalformedEvent::NotAnS3Event(format!(
                "`Records` is {}",
                json_kind(records)
            )));
        };
        // Counted before any record is read: a body of a thousand records costs nothing.
        if records.len() > MAX_RECORDS_PER_BODY {
            return Err(MalformedEvent::TooManyRecords {
                count: records.len(),
                max: MAX_RECORDS_PER_BODY,
            });
        }
        let mut out = Vec::with_capacity(records.len());
        for raw in records {
            let record: S3EventRecord = serde_json::from_value(raw.clone())
                .map_err(|e| MalformedEvent::NotAnS3Event(e.to_string()))?;
            let record_body = if records.len() == 1 {
                body.to_string()
            } else {
                serde_json::json!({ "Records": [raw] }).to_string()
            };
            let name = record.event_name.unwrap_or_default();
            if !name.starts_with("ObjectCreated") && !name.starts_with("s3:ObjectCreated") {
                return Err(MalformedEvent::NotAnS3Event(format!("event name {name:?}")));
            }
            let bucket = record
                .s3
                .bucket
                .name
                .filter(|b| !b.is_empty())
                .ok_or(MalformedEvent::MissingField("s3.bucket.name"))?;
            let key = record
                .s3
                .object
                .key
                .filter(|k| !k.is_empty())
                .ok_or(MalformedEvent::MissingField("s3.object.key"))?;
            let key_candidates = key_candidates(&key, KeyEncoding::Form);
            out.push(ObjectEvent {
                bucket,
                key: key_candidates[0].clone(),
                key_candidates,
                version_id: record.s3.object.version_id.filter(|v| !v.is_empty()),
                size: record.s3.object.size,
                etag: record.s3.object.e_tag,
                time: Some(record.event_time),
                reason: Some(name),
                record_body,
            });
        }
        if out.is_empty() {
            return Err(MalformedEvent::NotAnS3Event("no records".into()));
        }
        return Ok(out);
    }
    Err(MalformedEvent::NotAnS3Event(
        "neither an EventBridge event nor an S3 notification".into(),
    ))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// How an event's key is most likely encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// RFC 3986 percent-encoding, `+` literal (EventBridge, by the best evidence).
    Percent,
    /// `application/x-www-form-urlencoded`, `+` a space (classic S3 notifications).
    Form,
}

/// The distinct readings of a key as an event carries it, `likely` first, then the other
/// decoding, then the key exactly as written (an emitter that does not encode at all).
pub fn key_candidates(raw: &str, likely: KeyEncoding) -> Vec<String> {
    let percent = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|d| d.into_owned())
        .unwrap_or_else(|_| raw.to_string());
    let form = decode_event_key(raw);
    let ordered = match likely {
        KeyEncoding::Percent => [percent, form, raw.to_string()],
        KeyEncoding::Form => [form, percent, raw.to_string()],
    };
    let mut out: Vec<String> = Vec::with_capacity(3);
    for k in ordered {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Decodes an event key the way AWS encodes it: `application/x-www-form-urlencoded`
/// (`+` is a space, `%XX` a byte of UTF-8). A key whose decoded bytes are not UTF-8 is
/// returned as given.
pub fn decode_event_key(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    match percent_encoding::percent_decode_str(&plus_as_space).decode_utf8() {
        Ok(decoded) => decoded.into_owned(),
        Err(_) => raw.to_string(),
    }
}

/// Encodes a key as AWS writes it into S3 event notifications (the inverse of
/// [`decode_event_key`]): unreserved characters and `/` stay, a space becomes `+`, every
/// other byte becomes `%XX`.
pub fn encode_event_key(key: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/')
        .remove(b'*')
        .remove(b' ');
    utf8_percent_encode(key, KEEP).to_string().replace(' ', "+")
}

/// A classic S3 notification record of `ObjectCreated:Put` for `bucket`/`key` (raw, as it
/// would arrive: encode the key first) at `time`, with every field S3 documents.
#[cfg(test)]
pub(crate) fn test_record(bucket: &str, key: &str, time: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": time.to_rfc3339(),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "192.0.2.1"},
        "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "H"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "validation",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "O"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": key, "size": 5, "eTag": "e", "versionId": format!("v-{key}"), "sequencer": "0A"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/engine-events");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{EVENTS}/{name}")).expect("fixture exists")
    }

    #[rstest]
    #[case::localstack_plain("localstack-4.13.1-event-0.json", "simple.txt", true)]
    #[case::localstack_encoded(
        "localstack-4.13.1-event-1.json",
        "reports/Q1 summary+final é.txt",
        true
    )]
    #[case::localstack_multipart("localstack-4.13.1-event-2.json", "mpu/big file.bin", true)]
    #[case::localstack_copy("localstack-4.13.1-event-3.json", "copy.txt", true)]
    #[case::ministack_plain("ministack-1.5.33-event-0.json", "simple.txt", false)]
    #[case::ministack_multipart("ministack-1.5.33-event-2.json", "mpu/big file.bin", false)]
    fn parses_real_engine_events(#[case] file: &str, #[case] key: &str, #[case] has_version: bool) {
        let events = parse_body(&fixture(file)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].bucket, "evb-t3-src");
        assert_eq!(events[0].key, key);
        assert_eq!(events[0].version_id.is_some(), has_version);
        assert!(events[0].time.is_some());
    }

    #[rstest]
    #[case::deleted("localstack-4.13.1-event-4.json")]
    #[case::delete_marker("ministack-1.5.33-event-4.json")]
    fn deletion_events_are_not_object_created(#[case] file: &str) {
        assert!(matches!(
            parse_body(&fixture(file)),
            Err(MalformedEvent::NotAnS3Event(_))
        ));
    }

    #[rstest]
    #[case::plain("simple.txt", KeyEncoding::Percent, &["simple.txt"])]
    #[case::percent_space_and_plus("a%20b%2Bc.txt", KeyEncoding::Percent, &["a b+c.txt", "a%20b%2Bc.txt"])]
    #[case::literal_plus("a+b.txt", KeyEncoding::Percent, &["a+b.txt", "a b.txt"])]
    #[case::form_plus("red+flower.jpg", KeyEncoding::Form, &["red flower.jpg", "red+flower.jpg"])]
    #[case::raw_percent_sign("100%=done/x.txt", KeyEncoding::Percent, &["100%=done/x.txt"])]
    #[case::raw_escape_lookalike("a%41b", KeyEncoding::Percent, &["aAb", "a%41b"])]
    fn candidates(#[case] raw: &str, #[case] likely: KeyEncoding, #[case] want: &[&str]) {
        assert_eq!(key_candidates(raw, likely), want);
    }

    proptest! {
        /// Whatever an emitter does (raw, percent, form), the real key is a candidate.
        #[test]
        fn the_real_key_is_always_a_candidate(key in "[a-zA-Z0-9 +%=/é日._-]{1,30}") {
            use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
            const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
            let percent = utf8_percent_encode(&key, RFC3986).to_string();
            for (wire, likely) in [
                (key.clone(), KeyEncoding::Percent),
                (percent, KeyEncoding::Percent),
                (encode_event_key(&key), KeyEncoding::Form),
            ] {
                prop_assert!(key_candidates(&wire, likely).contains(&key), "{wire:?}");
            }
        }
    }

    #[rstest]
    #[case::permanently_deleted("localstack-4.13.1-event-4.json", "Permanently Deleted")]
    #[case::delete_marker("localstack-4.13.1-event-5.json", "Delete Marker Created")]
    #[case::delete_marker_raw_key("ministack-1.5.33-event-4.json", "Delete Marker Created")]
    fn deletion_events_are_acknowledged(#[case] file: &str, #[case] says: &str) {
        let why = acknowledged(&fixture(file)).expect("acknowledged");
        assert!(why.contains(says), "{why}");
    }

    #[test]
    fn the_s3_test_event_is_acknowledged() {
        // The body S3 sends when a notification configuration is saved (S3 User Guide).
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-22T00:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
        assert!(acknowledged(body).unwrap().contains("s3:TestEvent"));
        assert!(
            parse_body(body).is_err(),
            "still not an object-created event"
        );
    }

    #[rstest]
    #[case::object_created("localstack-4.13.1-event-1.json")]
    #[case::poison("not json")]
    #[case::other_json(r#"{"hello":"world"}"#)]
    fn everything_else_is_not_acknowledged(#[case] body_or_file: &str) {
        let body = if body_or_file.ends_with(".json") {
            fixture(body_or_file)
        } else {
            body_or_file.to_string()
        };
        assert_eq!(acknowledged(&body), None);
    }

    #[rstest]
    #[case::not_json("this is not json", "not JSON")]
    #[case::array("[1,2]", "top level is an array")]
    #[case::string("\"hello\"", "top level is a string")]
    #[case::other_event(
        r#"{"detail-type":"Object Created","source":"aws.ec2","detail":{}}"#,
        "aws.ec2"
    )]
    #[case::empty_object("{}", "neither")]
    fn rejects_what_is_not_an_s3_event(#[case] body: &str, #[case] says: &str) {
        let err = parse_body(body).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
    }

    fn records_body(keys: &[String], time: DateTime<Utc>) -> String {
        let records: Vec<_> = keys.iter().map(|k| test_record("b", k, time)).collect();
        serde_json::json!({ "Records": records }).to_string()
    }

    /// Finding #12: S3 sends one record per message; a body of a thousand is malformed,
    /// rejected before any record is read.
    #[test]
    fn a_body_of_a_thousand_records_is_malformed() {
        let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let err = parse_body(&records_body(&keys, Utc::now())).unwrap_err();
        assert_eq!(
            err,
            MalformedEvent::TooManyRecords {
                count: 1000,
                max: MAX_RECORDS_PER_BODY
            }
        );
        assert!(err.to_string().contains("1000 records"), "{err}");
        let keys: Vec<String> = (0..=MAX_RECORDS_PER_BODY)
            .map(|i| format!("k{i}"))
            .collect();
        assert!(matches!(
            parse_body(&records_body(&keys, Utc::now())),
            Err(MalformedEvent::TooManyRecords { .. })
        ));
    }

    /// Up to the cap, every record parses, and each carries a body announcing it alone.
    #[test]
    fn each_record_carries_a_body_of_its_own() {
        let keys: Vec<String> = (0..MAX_RECORDS_PER_BODY).map(|i| format!("k{i}")).collect();
        let body = records_body(&keys, Utc::now());
        let events = parse_body(&body).unwrap();
        assert_eq!(events.len(), MAX_RECORDS_PER_BODY);
        for (event, key) in events.iter().zip(&keys) {
            let alone = parse_body(&event.record_body).unwrap();
            assert_eq!(alone.len(), 1);
            assert_eq!(&alone[0].key, key);
            assert_eq!(alone[0].version_id, event.version_id);
        }
        // A body of one record is re-queued exactly as it arrived.
        let one = records_body(&keys[..1], Utc::now());
        assert_eq!(parse_body(&one).unwrap()[0].record_body, one);
        let eb = fixture("localstack-4.13.1-event-1.json");
        assert_eq!(parse_body(&eb).unwrap()[0].record_body, eb);
    }

    /// Finding #12: an event time beyond the clock-skew allowance is no event S3 sent (its
    /// lag budget would never run out): malformed. Within the allowance it parses.
    #[test]
    fn future_event_times_are_malformed() {
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let skew = chrono::TimeDelta::from_std(MAX_CLOCK_SKEW).unwrap();
        let body = |t: DateTime<Utc>| records_body(&["k".to_string()], t);
        let ahead = now + chrono::TimeDelta::days(1200);
        let err = parse_body_at(&body(ahead), now).unwrap_err();
        assert!(
            matches!(err, MalformedEvent::FutureEventTime { time, .. } if time == ahead),
            "{err:?}"
        );
        assert!(err.to_string().contains("in the future"), "{err}");
        assert!(parse_body_at(&body(now + skew + chrono::TimeDelta::seconds(1)), now).is_err());
        assert!(parse_body_at(&body(now + skew), now).is_ok());
        assert!(parse_body_at(&body(now - chrono::TimeDelta::days(30)), now).is_ok());
        // One future record makes the whole body malformed.
        let mixed = serde_json::json!({"Records": [
            test_record("b", "past", now),
            test_record("b", "future", ahead),
        ]})
        .to_string();
        assert!(matches!(
            parse_body_at(&mixed, now),
            Err(MalformedEvent::FutureEventTime { .. })
        ));
        // EventBridge events too.
        let mut eb: serde_json::Value =
            serde_json::from_str(&fixture("localstack-4.13.1-event-1.json")).unwrap();
        eb["time"] = serde_json::Value::from(ahead.to_rfc3339());
        assert!(matches!(
            parse_body_at(&eb.to_string(), now),
            Err(MalformedEvent::FutureEventTime { .. })
        ));
    }

    /// The allowance is SigV4's 15 minutes, on the minute.
    #[test]
    fn the_clock_skew_allowance_is_fifteen_minutes() {
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let body =
            |mins: i64| records_body(&["k".to_string()], now + chrono::TimeDelta::minutes(mins));
        assert!(parse_body_at(&body(14), now).is_ok());
        assert!(parse_body_at(&body(15), now).is_ok());
        assert!(parse_body_at(&body(16), now).is_err());
    }

    /// Event names are read in both spellings: the notification's (`ObjectCreated:Put`)
    /// and the configuration's (`s3:ObjectCreated:Put`).
    #[rstest]
    #[case("ObjectCreated:Put", true)]
    #[case("s3:ObjectCreated:CompleteMultipartUpload", true)]
    #[case("ObjectRemoved:Delete", false)]
    #[case("s3:ObjectRestore:Completed", false)]
    fn created_records_parse_in_either_spelling(#[case] name: &str, #[case] parses: bool) {
        let mut r = test_record("b", "k", Utc::now());
        r["eventName"] = name.into();
        let body = serde_json::json!({ "Records": [r] }).to_string();
        assert_eq!(parse_body(&body).is_ok(), parses, "{name}");
    }

    #[test]
    fn an_empty_version_id_is_no_version_id() {
        let mut r = test_record("b", "k", Utc::now());
        r["s3"]["object"]["versionId"] = "".into();
        let body = serde_json::json!({ "Records": [r] }).to_string();
        assert_eq!(parse_body(&body).unwrap()[0].version_id, None);
    }

    /// A body of removals only is acknowledged (nothing to validate); a body with any
    /// other record, or none, is not.
    #[rstest]
    #[case(&["ObjectRemoved:Delete"], true)]
    #[case(&["s3:ObjectRemoved:DeleteMarkerCreated", "ObjectRemoved:Delete"], true)]
    #[case(&["ObjectRemoved:Delete", "ObjectCreated:Put"], false)]
    #[case(&[], false)]
    fn removals_only_are_acknowledged(#[case] names: &[&str], #[case] acked: bool) {
        let records: Vec<_> = names
            .iter()
            .map(|n| {
                let mut r = test_record("b", "k", Utc::now());
                r["eventName"] = (*n).into();
                r
            })
            .collect();
        let body = serde_json::json!({ "Records": records }).to_string();
        assert_eq!(acknowledged(&body).is_some(), acked, "{names:?}");
    }

    #[test]
    fn records_must_be_an_array() {
        let err = parse_body(r#"{"Records":{"a":1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`Records` is an object"), "{err}");
    }

    #[rstest]
    #[case("red+flower.jpg", "red flower.jpg")]
    #[case("a%2Bb", "a+b")]
    #[case("100%25%3Ddone", "100%=done")]
    #[case("caf%C3%A9", "café")]
    #[case("bad%FFutf8", "bad%FFutf8")]
    fn decodes_form_encoded_keys(#[case] raw: &str, #[case] key: &str) {
        assert_eq!(decode_event_key(raw), key);
    }

    proptest! {
        #[test]
        fn parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let body = String::from_utf8_lossy(&bytes);
            let _ = parse_body(&body);
        }

        #[test]
        fn parser_never_panics_on_json(v in arb_json()) {
            let _ = parse_body(&v.to_string());
        }

        #[test]
        fn key_encoding_round_trips(key in "\\PC{0,40}") {
            prop_assert_eq!(decode_event_key(&encode_event_key(&key)), key);
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z%+ ]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            let keys = prop_oneof![
                Just("detail-type".to_string()),
                Just("source".to_string()),
                Just("detail".to_string()),
                Just("bucket".to_string()),
                Just("object".to_string()),
                Just("key".to_string()),
                Just("name".to_string()),
                Just("Records".to_string()),
                Just("s3".to_string()),
                Just("version-id".to_string()),
                Just("time".to_string()),
                "[a-z]{1,4}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
