//! The event source mapping: runs each function as Lambda's SQS trigger would.
//!
//! Long-polls up to the batch size, builds the `SqsEvent` with the real message and system
//! attributes, calls the same handler code the Lambda binary runs, deletes the successes,
//! and leaves reported failures for SQS to redeliver after their visibility timeout (moving
//! them to a DLQ is the queue's redrive policy, as on AWS).
//!
//! As Lambda runs it (Lambda Developer Guide, "Using Lambda with Amazon SQS"):
//! - **Timeout.** Each invocation gets the function's timeout as its deadline. One that
//!   overruns is stopped and its whole batch fails: no `batchItemFailures` is read, nothing
//!   is deleted, and every message returns after its visibility timeout.
//! - **Batching window.** With `MaximumBatchingWindowInSeconds` the poller gathers records
//!   for up to that long before invoking with fewer than the batch size.
//! - **Partial batch responses.** Only the reported `batchItemFailures` stay; an empty
//!   identifier or one naming no message of the batch fails the whole batch (nothing is
//!   deleted), as Lambda treats such a response.
//! - **Throttling.** A throttled invocation has received its messages but never runs them:
//!   they return after their visibility timeout with `ApproximateReceiveCount` raised (why
//!   AWS asks for `maxReceiveCount` of at least 5).
//!
//! Scenarios may make the next invocations of a function overrun or be throttled
//! ([`InvocationFaults`]); each firing is observed.
//!
//! It is a plain SQS trigger: it knows nothing about S3 or replication. Whoever starts a
//! mapping may pass [`DeliveryHooks`] that run before and after each invocation
//! (`system.rs` owns the only ones).
//!
//! Floor 4: may import floors 0-3 (ground, engine, topology, fidelity).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use checksum_validator::Validator;
use failure_notifier::Notifier;
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::observe::{Observation, Observations};
use crate::topology::QueueRef;

/// What runs around each invocation of a mapping.
pub trait DeliveryHooks: Send + Sync {
    /// Before the function sees the batch (may rewrite record bodies).
    fn before<'a>(&'a self, event: &'a mut SqsEvent) -> BoxFuture<'a, ()>;
    /// After the function answered the batch.
    fn after<'a>(&'a self, event: &'a SqsEvent) -> BoxFuture<'a, ()>;
}

/// Invocation faults a scenario injects into one function's mappings.
#[derive(Debug, Default)]
pub struct InvocationFaults {
    /// The next this many invocations overrun their timeout after the function did its work
    /// (its side effects stand, its answer is lost: the case that replays a batch).
    pub overrun: AtomicU32,
    /// The next this many invocations are throttled: their messages were received but the
    /// function never runs.
    pub throttle: AtomicU32,
}

impl InvocationFaults {
    /// Takes one pending fault from `counter`, if any.
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The function behind a mapping.
#[derive(Clone)]
pub enum Function {
    Validator(Arc<Validator>),
    Notifier(Arc<Notifier>),
}

/// One SQS trigger: a queue, a function, a batch size.
#[derive(Clone)]
pub struct Mapping {
    /// Role of the queue in the topology ("validation", "validation-dlq", "failure").
    pub role: String,
    pub queue: QueueRef,
    pub function: Function,
    pub batch_size: i32,
    pub wait_seconds: i32,
    /// The function's timeout: each invocation's deadline.
    pub timeout: Duration,
    /// `MaximumBatchingWindowInSeconds`.
    pub batching_window: Duration,
    /// Overruns and throttles a scenario injected.
    pub faults: Arc<InvocationFaults>,
    /// Concurrent pollers (Lambda scales these; scenarios use 1).
    pub pollers: usize,
    pub hooks: Option<Arc<dyn DeliveryHooks>>,
    pub region: String,
    /// While true, the mapping does not poll (like a disabled event source mapping).
    pub paused: watch::Receiver<bool>,
    /// Pollers of this function inside a receive or a delivery right now: pausing waits
    /// for it to reach zero, so nothing is picked up after a pause returns.
    pub active: Arc<std::sync::atomic::AtomicUsize>,
}

/// Starts the pollers of a mapping; they stop when `stop` turns true.
pub fn spawn(
    mapping: Mapping,
    sqs: aws_sdk_sqs::Client,
    observations: Observations,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    (0..mapping.pollers.max(1))
        .map(|_| {
            let (m, s, o, st) = (
                mapping.clone(),
                sqs.clone(),
                observations.clone(),
                stop.clone(),
            );
            tokio::spawn(async move { poll_loop(m, s, o, st).await })
        })
        .collect()
}

async fn poll_loop(
    mut m: Mapping,
    sqs: aws_sdk_sqs::Client,
    obs: Observations,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        // Count ourselves active before looking at the pause flag (see `RunningSystem::set_paused`).
        m.active.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if *m.paused.borrow() {
            m.active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            tokio::select! {
                _ = stop.changed() => return,
                _ = m.paused.changed() => {},
            }
            continue;
        }
        let _active = ActiveGuard(m.active.clone());
        // One ReceiveMessage returns at most 10 messages (SQS API Reference); a larger batch
        // is gathered in the batching window below, as Lambda requires a window for it.
        let receive = sqs
            .receive_message()
            .queue_url(&m.queue.url)
            .max_number_of_messages(m.batch_size.min(10))
            .wait_time_seconds(m.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send();
        let out = tokio::select! {
            _ = stop.changed() => return,
            r = receive => r,
        };
        let mut messages = match out {
            Ok(o) => {
                failures = 0;
                o.messages.unwrap_or_default()
            }
            Err(e) => {
                if *stop.borrow() {
                    return;
                }
                tracing::warn!(queue = %m.queue.name, error = %crate::errors::sdk(e), "receive failed");
                tokio::time::sleep(receive_retry(failures, rand::random())).await;
                failures = failures.saturating_add(1);
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let window_ends = Instant::now() + m.batching_window;
        while messages.len() < m.batch_size as usize {
            let left = window_ends.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let more = sqs
                .receive_message()
                .queue_url(&m.queue.url)
                .max_number_of_messages((m.batch_size - messages.len() as i32).min(10))
                .wait_time_seconds(left.as_secs_f64().ceil().min(20.0) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send();
            let more = tokio::select! {
                _ = stop.changed() => return,
                r = more => r,
            };
            match more {
                Ok(o) => messages.extend(o.messages.unwrap_or_default()),
                Err(_) => break,
            }
        }
        let mut event = to_event(&m, messages);
        if InvocationFaults::take(&m.faults.throttle) {
            received(&m, &obs, &event).await;
            obs.push(Observation::Throttled {
                queue: m.role.clone(),
                size: event.records.len(),
            })
            .await;
            continue;
        }
        if let Some(h) = &m.hooks {
            h.before(&mut event).await;
        }
        let answered = event.clone();
        deliver(&m, &sqs, &obs, event).await;
        if let Some(h) = &m.hooks {
            h.after(&answered).await;
        }
    }
}

/// Decrements a mapping's active count when a poll round ends, however it ends.
struct ActiveGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Builds the Lambda event exactly as the SQS trigger does.
fn to_event(m: &Mapping, messages: Vec<aws_sdk_sqs::types::Message>) -> SqsEvent {
    let mut event = SqsEvent::default();
    for msg in messages {
        let mut rec = SqsMessage::default();
        rec.message_id = msg.message_id().map(str::to_string);
        rec.receipt_handle = msg.receipt_handle().map(str::to_string);
        rec.body = msg.body().map(str::to_string);
        rec.md5_of_body = msg.md5_of_body().map(str::to_string);
        rec.md5_of_message_attributes = msg.md5_of_message_attributes().map(str::to_string);
        rec.attributes = msg
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                    .collect::<HashMap<_, _>>()
            })
            .unwrap_or_default();
        rec.message_attributes = msg
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| {
                        let mut attr = SqsMessageAttribute::default();
                        attr.string_value = v.string_value().map(str::to_string);
                        attr.data_type = Some(v.data_type().to_string());
                        (k.clone(), attr)
                    })
                    .collect::<HashMap<_, _>>()
            })
            .unwrap_or_default();
        rec.event_source = Some("aws:sqs".into());
        rec.event_source_arn = Some(m.queue.arn.clone());
        rec.aws_region = Some(m.region.clone());
        event.records.push(rec);
    }
    event
}

/// Records each message of a batch as received by the mapping's function: its receive
/// count (the delivery attempt) and when SQS accepted it.
async fn received(m: &Mapping, obs: &Observations, event: &SqsEvent) {
    for r in &event.records {
        let attribute = |name: &str| r.attributes.get(name).and_then(|v| v.parse::<u64>().ok());
        let sent = match attribute("SentTimestamp") {
            Some(ms) => Some(obs.offset_of_epoch_millis(ms).await),
            None => None,
        };
        obs.push(Observation::Received {
            queue: m.role.clone(),
            message_id: r.message_id.clone().unwrap_or_default(),
            receive_count: attribute("ApproximateReceiveCount").map(|c| c as u32),
            sent,
        })
        .await;
    }
}

/// One invocation: the function runs under its deadline; an overrun fails the whole batch.
async fn deliver(m: &Mapping, sqs: &aws_sdk_sqs::Client, obs: &Observations, event: SqsEvent) {
    received(m, obs, &event).await;
    let receipts: Vec<(String, String)> = event
        .records
        .iter()
        .filter_map(|r| Some((r.message_id.clone()?, r.receipt_handle.clone()?)))
        .collect();
    let deadline = Instant::now() + m.timeout;
    let size = receipts.len();
    let answered = tokio::time::timeout_at(deadline.into(), invoke(m, obs, event, deadline)).await;
    let overran = match answered {
        Ok(_) if InvocationFaults::take(&m.faults.overrun) => {
            // The work is done; the answer never reaches Lambda before the timeout.
            tokio::time::sleep_until(deadline.into()).await;
            None
        }
        Ok(failed) => Some(failed),
        Err(_) => None,
    };
    let Some(failed) = overran else {
        obs.push(Observation::TimedOut {
            queue: m.role.clone(),
            size,
            timeout: m.timeout,
        })
        .await;
        return;
    };
    let done = to_delete(&receipts, &failed);
    obs.push(Observation::Batch {
        queue: m.role.clone(),
        size,
        failed: done.as_ref().map(|d| size - d.len()).unwrap_or(size),
    })
    .await;
    let Some(done) = done else {
        return;
    };
    let done = done.into_iter();
    let deleted = delete_receipts(sqs, &m.queue.url, done).await;
    if let Ok(refused) = &deleted {
        for n in refused {
            tracing::warn!(queue = %m.queue.name, entry = %n.id, code = %n.code, message = %n.message, "a processed message was not deleted; it returns after its visibility timeout");
        }
    }
    if let Err(e) = deleted {
        obs.push(Observation::BatchError {
            queue: m.role.clone(),
            error: format!("deleting processed messages failed: {e}"),
        })
        .await;
    }
}

/// The receipt handles a partial batch response lets Lambda delete: every message not
/// named in `failed`. `None` when the response fails the whole batch: "Lambda treats a
/// batch as a complete failure if your function returns ... an empty string
/// itemIdentifier, a null itemIdentifier, ... an itemIdentifier value with a message ID
/// that doesn't exist" (Lambda Developer Guide, "Handling errors for an SQS event source
/// in Lambda"); then nothing is deleted.
fn to_delete<'a>(receipts: &'a [(String, String)], failed: &[String]) -> Option<Vec<&'a str>> {
    if failed
        .iter()
        .any(|id| id.is_empty() || !receipts.iter().any(|(r, _)| r == id))
    {
        return None;
    }
    Some(
        receipts
            .iter()
            .filter(|(id, _)| !failed.contains(id))
            .map(|(_, receipt)| receipt.as_str())
            .collect(),
    )
}

/// Runs the function on a batch and returns the ids of its batch item failures.
async fn invoke(
    m: &Mapping,
    obs: &Observations,
    event: SqsEvent,
    deadline: Instant,
) -> Vec<String> {
    match &m.function {
        Function::Validator(v) => {
            let report = v.handle_with_report(event, Some(deadline)).await;
            for r in report.records {
                obs.push(Observation::Decision {
                    queue: m.role.clone(),
                    report: r,
                })
                .await;
            }
            report
                .response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect()
        }
        Function::Notifier(n) => {
            let counts: HashMap<String, Option<u32>> = event
                .records
                .iter()
                .map(|r| {
                    (
                        r.message_id.clone().unwrap_or_default(),
                        r.attributes
                            .get("ApproximateReceiveCount")
                            .and_then(|c| c.parse().ok()),
                    )
                })
                .collect();
            let (response, reports) = n.handle_with_report(event, Some(deadline)).await;
            for r in reports {
                obs.push(Observation::Notified {
                    queue: m.role.clone(),
                    receive_count: counts.get(&r.message_id).copied().flatten(),
                    report: r,
                })
                .await;
            }
            response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect()
        }
    }
}

/// The wait before receiving again after `failures` failed receives in a row: 500 ms
/// doubling to 5 s, scaled by 0.5..1.5 (`jitter` in 0..1) so the mappings of several
/// queues do not retry a struggling engine in lockstep.
pub fn receive_retry(failures: u32, jitter: f64) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1 << failures.min(4))
        .min(Duration::from_secs(5));
    base.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// Deletes messages by receipt handle, ten per `DeleteMessageBatch` call, and answers the
/// receipts that were not deleted. A call succeeds as a whole while entries fail one by
/// one (SQS API Reference, `DeleteMessageBatch`: "the result of the action on each message
/// is reported individually"): an entry that failed on the service's side
/// (`SenderFault=false`) is retried once; one the service refuses (a stale or invalid
/// receipt handle) is not deleted and comes back after its visibility timeout, as on AWS,
/// and is answered so the caller can say so.
pub async fn delete_receipts<'a>(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    receipts: impl Iterator<Item = &'a str>,
) -> Result<Vec<NotDeleted>, String> {
    let receipts: Vec<&str> = receipts.collect();
    let mut not_deleted = Vec::new();
    for chunk in receipts.chunks(10) {
        let mut pending: Vec<(usize, &str)> = chunk.iter().copied().enumerate().collect();
        for attempt in 0..2 {
            let entries: Vec<DeleteMessageBatchRequestEntry> = pending
                .iter()
                .filter_map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(*r)
                        .build()
                        .ok()
                })
                .collect();
            let out = sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(crate::errors::sdk)?;
            let (retry, refused) = split_failures(out.failed(), attempt == 0);
            not_deleted.extend(refused);
            pending.retain(|(i, _)| retry.contains(&format!("m{i}")));
            if pending.is_empty() {
                break;
            }
        }
    }
    Ok(not_deleted)
}

/// A receipt `DeleteMessageBatch` did not delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDeleted {
    pub id: String,
    pub code: String,
    pub message: String,
}

/// The failed entries of one `DeleteMessageBatch` answer: the ids to send again (failed on
/// the service's side, when `may_retry`) and the ones that stay undeleted.
fn split_failures(
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
    may_retry: bool,
) -> (Vec<String>, Vec<NotDeleted>) {
    let mut retry = Vec::new();
    let mut refused = Vec::new();
    for f in failed {
        if may_retry && !f.sender_fault() {
            retry.push(f.id().to_string());
        } else {
            refused.push(NotDeleted {
                id: f.id().to_string(),
                code: f.code().to_string(),
                message: f.message().unwrap_or_default().to_string(),
            });
        }
    }
    (retry, refused)
}

/// Consumes the alert queue (the SNS subscription standing in for e-mail) and records each
/// alert's subject and message.
pub fn spawn_alert_sink(
    queue: QueueRef,
    sqs: aws_sdk_sqs::Client,
    observations: Observations,
    mut stop: watch::Receiver<bool>,
    wait_seconds: i32,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let receive = sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait_seconds)
                .send();
            let out = tokio::select! {
                _ = stop.changed() => return,
                r = receive => r,
            };
            let Ok(out) = out else {
                tokio::time::sleep(receive_retry(failures, rand::random())).await;
                failures = failures.saturating_add(1);
                continue;
            };
            failures = 0;
            for msg in out.messages.unwrap_or_default() {
                let body = msg.body().unwrap_or_default();
                let n = parse_sns_envelope(body);
                observations
                    .push(Observation::Alert {
                        subject: n.subject,
                        message: n.message,
                        attributes: n.attributes,
                    })
                    .await;
                if let Some(r) = msg.receipt_handle() {
                    let _ = sqs
                        .delete_message()
                        .queue_url(&queue.url)
                        .receipt_handle(r)
                        .send()
                        .await;
                }
            }
        }
    })
}

/// Subject and message of an SNS -> SQS delivery (the JSON envelope), or the raw body.
pub fn parse_sns_envelope(body: &str) -> SnsNotification {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v.get("Type").and_then(|t| t.as_str()) == Some("Notification") => {
            let text = |k: &str| v.get(k).and_then(|s| s.as_str()).unwrap_or("").to_string();
            let attributes = v
                .get("MessageAttributes")
                .and_then(|a| a.as_object())
                .map(|a| {
                    a.iter()
                        .filter_map(|(name, attr)| {
                            attr.get("Value")
                                .and_then(|x| x.as_str())
                                .map(|x| (name.clone(), x.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            SnsNotification {
                subject: text("Subject"),
                message: text("Message"),
                attributes,
            }
        }
        _ => SnsNotification {
            subject: String::new(),
            message: body.to_string(),
            attributes: Default::default(),
        },
    }
}

/// What an SQS subscription received from SNS (the JSON envelope, not raw delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsNotification {
    pub subject: String,
    pub message: String,
    /// `MessageAttributes`: name -> `Value` (string and number attributes).
    pub attributes: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 23 (partial): failed receives back off with jitter instead of retrying
    /// every 500 ms in lockstep.
    #[test]
    fn failed_receives_back_off_with_jitter() {
        assert_eq!(receive_retry(0, 0.5), Duration::from_millis(500));
        assert!(receive_retry(0, 0.0) < receive_retry(0, 1.0));
        assert_eq!(receive_retry(10, 0.5), Duration::from_secs(5));
        assert!(receive_retry(10, 1.0) <= Duration::from_millis(7500));
        for n in 0..8 {
            assert!(receive_retry(n, 0.5) <= receive_retry(n + 1, 0.5));
        }
    }

    /// Finding 23 (partial): each failed entry of a `DeleteMessageBatch` answer is read;
    /// a service-side failure is sent again once, a refused one is answered as not deleted.
    #[test]
    fn failed_delete_entries_are_retried_or_reported() {
        use aws_sdk_sqs::types::BatchResultErrorEntry;
        let entry = |id: &str, code: &str, sender: bool| {
            BatchResultErrorEntry::builder()
                .id(id)
                .code(code)
                .sender_fault(sender)
                .message("m")
                .build()
                .unwrap()
        };
        let failed = [
            entry("m0", "InternalError", false),
            entry("m3", "ReceiptHandleIsInvalid", true),
        ];
        let (retry, refused) = split_failures(&failed, true);
        assert_eq!(retry, vec!["m0".to_string()]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].code, "ReceiptHandleIsInvalid");
        let (retry, refused) = split_failures(&failed, false);
        assert!(retry.is_empty());
        assert_eq!(refused.len(), 2);
    }

    #[test]
    fn an_invalid_batch_item_failure_fails_the_whole_batch() {
        let receipts = vec![
            ("a".to_string(), "ra".to_string()),
            ("b".into(), "rb".into()),
        ];
        assert_eq!(to_delete(&receipts, &[]), Some(vec!["ra", "rb"]));
        assert_eq!(to_delete(&receipts, &["b".into()]), Some(vec!["ra"]));
        assert_eq!(to_delete(&receipts, &["".into()]), None);
        assert_eq!(to_delete(&receipts, &["a".into(), "zz".into()]), None);
    }

    #[test]
    fn reads_the_real_sns_envelope() {
        let body = include_str!("../../fixtures/engine-events/localstack-sns-envelope.json");
        let n = parse_sns_envelope(body);
        assert_eq!(n.subject, "Probe subject");
        assert_eq!(n.message, "hello from sns");
        assert_eq!(n.attributes.get("k").map(String::as_str), Some("v"));
    }
}
