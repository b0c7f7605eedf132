use super::*;

use std::time::Duration;

use chrono::Utc;

use crate::attempts::{max_receive_count_of, ATTEMPTS_ATTRIBUTE, MAX_CARRIED_ATTEMPTS};
use crate::config::ValidatorConfig;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/engine-events");

fn message(id: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_string());
    m.receipt_handle = Some(format!("receipt-{id}"));
    m.body = Some(body.to_string());
    m.attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    m
}

/// A validator whose AWS endpoint refuses connections: every AWS call fails fast as a
/// transient error, so the batch logic is exercised without an engine.
async fn offline_validator() -> Validator {
    validator_at("http://127.0.0.1:9").await
}

async fn validator_at(endpoint: &str) -> Validator {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let config = ValidatorConfig {
        // The fixture events are days old: keep them inside the lag budget.
        lag_budget: Duration::from_secs(10 * 365 * 24 * 3600),
        ..ValidatorConfig::default()
    };
    Validator::new(config, &sdk)
}

#[tokio::test]
async fn each_record_of_a_batch_is_decided_on_its_own() {
    let v = offline_validator().await;
    let mut event = SqsEvent::default();
    for (id, file) in [
        ("ls", "localstack-4.13.1-event-1.json"),
        ("ms", "ministack-1.5.33-event-2.json"),
    ] {
        let body = std::fs::read_to_string(format!("{EVENTS}/{file}")).unwrap();
        event.records.push(message(id, &body));
    }
    event.records.push(message("poison", "not json at all"));
    event.records.push(message(
        "deleted",
        &std::fs::read_to_string(format!("{EVENTS}/localstack-4.13.1-event-4.json")).unwrap(),
    ));
    let report = v.handle_with_report(event, None).await;

    let by_id = |id: &str| report.records.iter().find(|r| r.message_id == id).unwrap();
    assert_eq!(report.records.len(), 4);
    assert_eq!(by_id("poison").outcome, Outcome::Malformed);
    // A deletion announces nothing to validate: acknowledged, not a poison pill.
    assert_eq!(by_id("deleted").outcome, Outcome::Acknowledged);
    assert_eq!(by_id("deleted").action, Action::Done);
    // Real engine events parse; the unreachable endpoint makes them transient errors,
    // retried, never a verdict on the replica.
    for id in ["ls", "ms"] {
        let r = by_id(id);
        assert_eq!(r.outcome, Outcome::TransientError, "{r:?}");
        assert!(matches!(r.action, Action::RetryAfter(_)));
        assert_eq!(r.object.as_ref().unwrap().bucket, "evb-t3-src");
    }
    assert_eq!(
        by_id("ls").object.as_ref().unwrap().key,
        "reports/Q1 summary+final é.txt"
    );
    let mut failed: Vec<&str> = report
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort();
    assert_eq!(failed, vec!["ls", "ms", "poison"]);
}

#[test]
fn reads_the_redrive_policy() {
    assert_eq!(
        max_receive_count_of(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:1:dlq","maxReceiveCount":5}"#
        ),
        Some(5)
    );
    assert_eq!(
        max_receive_count_of(r#"{"deadLetterTargetArn":"x","maxReceiveCount":"7"}"#),
        Some(7)
    );
    assert_eq!(max_receive_count_of("{}"), None);
    assert_eq!(max_receive_count_of("not json"), None);
}

fn batch_of_real_events(n: usize) -> SqsEvent {
    let body = std::fs::read_to_string(format!("{EVENTS}/localstack-4.13.1-event-1.json")).unwrap();
    let mut event = SqsEvent::default();
    for i in 0..n {
        event.records.push(message(&format!("m{i}"), &body));
    }
    event
}

#[tokio::test]
async fn nothing_starts_within_the_deadline_margin() {
    let v = offline_validator().await;
    let deadline = Instant::now() + Duration::from_millis(500);
    let report = v
        .handle_with_report(batch_of_real_events(3), Some(deadline))
        .await;
    assert_eq!(report.records.len(), 3);
    for r in &report.records {
        assert_eq!(r.outcome, Outcome::Deferred, "{r:?}");
        assert!(r.action.is_batch_failure());
    }
    assert_eq!(report.response.batch_item_failures.len(), 3);
}

/// An endpoint that accepts connections and never answers (a stalled S3): records still
/// running near the deadline are cut, and the batch answers before the deadline.
#[tokio::test]
async fn a_stalled_dependency_never_makes_the_batch_overrun() {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let v = validator_at(&endpoint).await;
    let started = Instant::now();
    let deadline = started + Duration::from_millis(2000);
    let report = v
        .handle_with_report(batch_of_real_events(2), Some(deadline))
        .await;
    let took = started.elapsed();
    hold.abort();
    assert!(
        took < Duration::from_millis(2000),
        "answered after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(1000),
        "cut too early: {took:?}"
    );
    for r in &report.records {
        assert_eq!(r.outcome, Outcome::Deferred, "{r:?}");
        assert!(r.detail.contains("cut"), "{}", r.detail);
    }
    assert_eq!(report.response.batch_item_failures.len(), 2);
}

/// An S3 that answers every request 400 with no body, as S3 answers a HEAD of an SSE-C
/// object without its customer key: the record is `unverifiable (SSE-C)`, not an error.
#[tokio::test]
async fn a_head_answering_400_is_unverifiable_sse_c() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let _ = socket
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    let v = validator_at(&endpoint).await;
    let report = v.handle_with_report(batch_of_real_events(1), None).await;
    server.abort();
    let r = &report.records[0];
    assert_eq!(r.outcome, Outcome::Unverifiable, "{r:?}");
    assert!(r.detail.contains("SSE-C"), "{}", r.detail);
}

/// What [`FakeAws`] saw: one `(operation, JSON request)` per SQS call.
type SqsCalls = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;

/// A local AWS endpoint for the handler's queue logic: answers the SQS calls the handler
/// makes (JSON protocol, `X-Amz-Target: AmazonSQS.<Operation>`) and records them, with
/// a redrive policy of `max_receive_count`; answers every S3 request (no target header)
/// with the status `s3_status` gives for its path.
struct FakeAws {
    endpoint: String,
    calls: SqsCalls,
    server: tokio::task::JoinHandle<()>,
}

impl FakeAws {
    async fn start(max_receive_count: u32, s3_status: fn(&str) -> u16) -> FakeAws {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let calls = SqsCalls::default();
        let (seen, base) = (calls.clone(), endpoint.clone());
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (seen, base) = (seen.clone(), base.clone());
                tokio::spawn(async move {
                    let mut socket = BufReader::new(socket);
                    loop {
                        let mut request_line = String::new();
                        if socket.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
                        let (mut length, mut target) = (0usize, None::<String>);
                        loop {
                            let mut line = String::new();
                            if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            let (name, value) = line.split_once(':').unwrap_or((line, ""));
                            match name.to_ascii_lowercase().as_str() {
                                "content-length" => length = value.trim().parse().unwrap(),
                                "x-amz-target" => target = Some(value.trim().to_string()),
                                _ => {}
                            }
                        }
                        let mut body = vec![0u8; length];
                        socket.read_exact(&mut body).await.unwrap();
                        let response = match target {
                            None => format!(
                                "HTTP/1.1 {} Fake\r\ncontent-length: 0\r\n\r\n",
                                s3_status(&path)
                            ),
                            Some(target) => {
                                let op = target.trim_start_matches("AmazonSQS.").to_string();
                                let request: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap_or_default();
                                let answer = match op.as_str() {
                                    "GetQueueUrl" => serde_json::json!({
                                        "QueueUrl": format!("{base}/123456789012/{}", request["QueueName"].as_str().unwrap_or(""))
                                    }),
                                    "GetQueueAttributes" => serde_json::json!({"Attributes": {
                                        "RedrivePolicy": serde_json::json!({
                                            "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:validation-dlq",
                                            "maxReceiveCount": max_receive_count,
                                        }).to_string()
                                    }}),
                                    "SendMessage" => serde_json::json!({"MessageId": "fake"}),
                                    _ => serde_json::json!({}),
                                }
                                .to_string();
                                seen.lock().unwrap().push((op, request));
                                format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{answer}",
                                    answer.len()
                                )
                            }
                        };
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeAws {
            endpoint,
            calls,
            server,
        }
    }

    /// The validator under test, its failure queue on this endpoint.
    async fn validator(&self) -> Validator {
        let mut v = validator_at(&self.endpoint).await;
        v.config.failure_queue_url = Some(format!("{}/123456789012/failure", self.endpoint));
        v
    }

    /// The messages sent to the queue named `queue`: (body, attributes).
    fn sent_to(&self, queue: &str) -> Vec<(String, serde_json::Value)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, r)| {
                op == "SendMessage"
                    && r["QueueUrl"]
                        .as_str()
                        .is_some_and(|u| u.ends_with(&format!("/{queue}")))
            })
            .map(|(_, r)| {
                (
                    r["MessageBody"].as_str().unwrap_or("").to_string(),
                    r["MessageAttributes"].clone(),
                )
            })
            .collect()
    }

    fn count(&self, operation: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(op, _)| op == operation)
            .count()
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A message from the `validation` queue holding one S3 notification record per key.
fn multi_record_message(keys: &[&str], receive_count: u32) -> SqsMessage {
    let records: Vec<_> = keys
        .iter()
        .map(|k| crate::event::test_record("src", k, Utc::now()))
        .collect();
    let body = serde_json::json!({ "Records": records }).to_string();
    let mut m = message("multi", &body);
    m.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:validation".into());
    m.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    m
}

/// Finding #12: a body of 3 records that all reach `maxReceiveCount` is re-queued as 3
/// messages holding 1 record each (each with the attempts so far), never as 3 copies of
/// the 3-record body; the original is deleted.
#[tokio::test]
async fn a_lagging_multi_record_body_is_requeued_one_record_per_message() {
    let aws = FakeAws::start(5, |_| 503).await;
    let v = aws.validator().await;
    let mut event = SqsEvent::default();
    event
        .records
        .push(multi_record_message(&["k0", "k1", "k2"], 5));
    let report = v.handle_with_report(event, None).await;

    assert_eq!(report.records.len(), 3);
    for r in &report.records {
        assert_eq!(r.outcome, Outcome::TransientError, "{r:?}");
        assert!(matches!(r.action, Action::Requeued(_)), "{r:?}");
    }
    assert!(report.response.batch_item_failures.is_empty());
    let requeued = aws.sent_to("validation");
    assert_eq!(requeued.len(), 3, "{requeued:?}");
    let mut keys: Vec<String> = requeued
        .iter()
        .map(|(body, attributes)| {
            let events = parse_body(body).unwrap();
            assert_eq!(
                events.len(),
                1,
                "a re-queued message holds one record: {body}"
            );
            assert_eq!(
                attributes[ATTEMPTS_ATTRIBUTE]["StringValue"].as_str(),
                Some("5"),
                "{attributes}"
            );
            events[0].key.clone()
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["k0", "k1", "k2"]);
    assert_eq!(aws.count("DeleteMessage"), 1);
    assert_eq!(aws.count("ChangeMessageVisibility"), 0);
}

/// Finding #12: a record that is final within its body (its failure record sent) is
/// not judged again: only the lagging records of the body are re-queued, each alone,
/// even before the receive count runs out.
#[tokio::test]
async fn a_final_record_of_a_body_is_never_requeued() {
    // `final.txt` answers its HEAD 400 (unverifiable: an alert); the others 503.
    let aws = FakeAws::start(5, |path| if path.contains("final.txt") { 400 } else { 503 }).await;
    let v = aws.validator().await;
    let mut event = SqsEvent::default();
    event
        .records
        .push(multi_record_message(&["a.txt", "final.txt", "b.txt"], 1));
    let report = v.handle_with_report(event, None).await;

    let outcome = |key: &str| {
        report
            .records
            .iter()
            .find(|r| r.object.as_ref().unwrap().key == key)
            .unwrap()
    };
    assert_eq!(outcome("final.txt").action, Action::FailureSent);
    assert!(matches!(outcome("a.txt").action, Action::Requeued(_)));
    assert!(matches!(outcome("b.txt").action, Action::Requeued(_)));
    assert!(report.response.batch_item_failures.is_empty());
    assert_eq!(aws.sent_to("failure").len(), 1);
    let mut keys: Vec<String> = aws
        .sent_to("validation")
        .iter()
        .map(|(body, _)| {
            let events = parse_body(body).unwrap();
            assert_eq!(events.len(), 1, "{body}");
            events[0].key.clone()
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["a.txt", "b.txt"]);
    assert_eq!(aws.count("DeleteMessage"), 1);
}

/// A body of one record still retries with `ChangeMessageVisibility` until its last
/// receive, and is then re-queued exactly as it arrived.
#[tokio::test]
async fn a_single_record_body_keeps_its_retry_path() {
    let aws = FakeAws::start(5, |_| 503).await;
    let v = aws.validator().await;
    let mut event = SqsEvent::default();
    event.records.push(multi_record_message(&["k"], 1));
    let report = v.handle_with_report(event, None).await;
    assert!(matches!(report.records[0].action, Action::RetryAfter(_)));
    assert_eq!(aws.count("ChangeMessageVisibility"), 1);
    assert!(aws.sent_to("validation").is_empty());

    let last = multi_record_message(&["k"], 5);
    let body = last.body.clone().unwrap();
    let mut event = SqsEvent::default();
    event.records.push(last);
    let report = v.handle_with_report(event, None).await;
    assert!(matches!(report.records[0].action, Action::Requeued(_)));
    let sent = aws.sent_to("validation");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, body);
}

fn with_carried_attempts(mut m: SqsMessage, carried: &str) -> SqsMessage {
    let mut attr = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
    attr.string_value = Some(carried.into());
    attr.data_type = Some("Number".into());
    m.message_attributes.insert(ATTEMPTS_ATTRIBUTE.into(), attr);
    m
}

/// Finding #24: `autobackup-attempts` is set by whoever sends the message. `u32::MAX`
/// once overflowed `carried + receive_count` (a panic in debug builds, a wrap to a small
/// attempt in release builds); now it is clamped and the sum saturates.
#[tokio::test]
async fn a_hostile_attempts_attribute_neither_panics_nor_wraps() {
    let v = offline_validator().await;
    let body = std::fs::read_to_string(format!("{EVENTS}/localstack-4.13.1-event-1.json")).unwrap();
    let mut event = SqsEvent::default();
    event.records.push(with_carried_attempts(
        message("max", &body),
        &u32::MAX.to_string(),
    ));
    let report = v.handle_with_report(event, None).await;
    let r = &report.records[0];
    assert!(!r.detail.contains("panicked"), "{r:?}");
    assert_eq!(r.outcome, Outcome::TransientError, "{r:?}");
    assert_eq!(r.attempt, MAX_CARRIED_ATTEMPTS + 1);
}

#[test]
fn carried_attempts_are_clamped_and_never_overflow() {
    let of = |carried: &str, receives: &str| {
        let mut m = with_carried_attempts(message("m", "{}"), carried);
        m.attributes
            .insert("ApproximateReceiveCount".into(), receives.into());
        attempts_of(&m)
    };
    assert_eq!(of("2", "3"), (3, 5));
    assert_eq!(
        of(&u32::MAX.to_string(), "1"),
        (1, MAX_CARRIED_ATTEMPTS + 1)
    );
    assert_eq!(of("99999999999999999999999", "1"), (1, 1));
    assert_eq!(
        of(&u64::MAX.to_string(), "2"),
        (2, MAX_CARRIED_ATTEMPTS + 2)
    );
    assert_eq!(of("-5", "1"), (1, 1));
    assert_eq!(of("not a number", "1"), (1, 1));
    assert_eq!(
        of(&u32::MAX.to_string(), &u32::MAX.to_string()),
        (u32::MAX, u32::MAX)
    );
}

/// Finding #31: a key and a detail holding line breaks, C1 controls and bidi overrides
/// stay on the record's one log line, even in a text-format log (which, unlike the
/// JSON one, writes `%` values raw).
#[test]
fn record_logs_cannot_be_forged() {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Capture::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let report = RecordReport {
        message_id: "m".into(),
        object: Some(ObjectRef {
            bucket: "b".into(),
            key: "k\nINFO forged: validated".into(),
            version_id: Some("v\r\n1".into()),
            category: None,
        }),
        outcome: Outcome::Mismatch,
        detail: "differs\nINFO record decided outcome=validated\u{85}\u{2028}\u{202E}".into(),
        evidence: Vec::new(),
        attempt: 1,
        action: Action::Done,
        version_source: None,
        replicas: Vec::new(),
        duration_ms: 0,
    };
    tracing::subscriber::with_default(subscriber, || log_report(&report));
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !text.trim_end().chars().any(crate::text::is_unsafe),
        "{text:?}"
    );
    assert!(text.contains("k\\nINFO forged"), "{text}");
}

#[tokio::test]
async fn an_empty_batch_reports_no_failures() {
    let v = offline_validator().await;
    let r = v.handle(SqsEvent::default(), None).await;
    assert!(r.batch_item_failures.is_empty());
}

/// A retry waits the configured backoff (RETRY_BASE_SECONDS doubling to RETRY_MAX_SECONDS,
/// in the upper half with jitter), never no time at all: lagging versions must not hammer
/// S3 and the queue.
#[tokio::test]
async fn retries_wait_the_configured_backoff() {
    let v = offline_validator().await;
    let (base, max) = (v.config.retry_base, v.config.retry_max);
    for attempt in 1..12 {
        let raw = base.saturating_mul(1 << (attempt - 1)).min(max);
        let d = v.retry_delay(attempt);
        assert!(
            d >= raw / 2 && d <= raw,
            "attempt {attempt}: {d:?} outside {raw:?}/2..={raw:?}"
        );
    }
}

fn reported(action: Action) -> RecordReport {
    RecordReport {
        message_id: "m".into(),
        object: None,
        outcome: Outcome::Validated,
        detail: String::new(),
        evidence: Vec::new(),
        attempt: 1,
        action,
        version_source: None,
        replicas: Vec::new(),
        duration_ms: 0,
    }
}

/// A message is deleted at once only when a record of it had a side effect and none of
/// it is left to retry: a record still to retry keeps the whole message.
#[rstest::rstest]
#[case(&[Action::FailureSent], true)]
#[case(&[Action::Done, Action::Requeued(Duration::from_secs(5))], true)]
#[case(&[Action::Done], false)]
#[case(&[Action::FailureSent, Action::RetryAfter(Duration::from_secs(5))], false)]
#[case(&[Action::RetryAfter(Duration::from_secs(5))], false)]
#[case(&[], false)]
fn a_message_is_deleted_at_once_only_when_nothing_of_it_is_retried(
    #[case] actions: &[Action],
    #[case] deleted: bool,
) {
    let reports: Vec<RecordReport> = actions.iter().cloned().map(reported).collect();
    assert_eq!(delete_at_once(&reports), deleted, "{actions:?}");
}

/// The entry point answers for every record: offline, a real event's record is retried
/// (a batch item failure), never dropped.
#[tokio::test]
async fn the_entry_point_answers_for_every_record() {
    let v = offline_validator().await;
    let mut event = SqsEvent::default();
    let body = std::fs::read_to_string(format!("{EVENTS}/localstack-4.13.1-event-1.json")).unwrap();
    event.records.push(message("m-1", &body));
    let r = v.handle(event, None).await;
    let failed: Vec<&str> = r
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-1"]);
}

/// The configuration a validator was built with is the one it reports (its public
/// accessor, for callers embedding the library).
#[tokio::test]
async fn a_validator_reports_its_configuration() {
    let v = offline_validator().await;
    assert_eq!(
        v.config().lag_budget,
        Duration::from_secs(10 * 365 * 24 * 3600)
    );
    assert_eq!(v.config(), &v.config);
}
