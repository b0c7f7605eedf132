//! Where a record stands in its delivery: SQS's receive count, the attempts a re-queued copy
//! carries in a message attribute (read as untrusted), and the queue's `maxReceiveCount`.
//!
//! Floor 0: imports nothing of the crate.

use aws_lambda_events::event::sqs::SqsMessage;

/// Message attribute carrying the attempts made before a lagging message was re-queued.
pub const ATTEMPTS_ATTRIBUTE: &str = "autobackup-attempts";
/// The most attempts a message may carry in [`ATTEMPTS_ATTRIBUTE`]: far above what the
/// lag budget and the overdue cap ever reach (the backoff is at its maximum long before),
/// low enough that no sum overflows.
pub const MAX_CARRIED_ATTEMPTS: u32 = 1_000;
/// Message attribute set on a message whose `replication-overdue` alert was sent: it is
/// watched until the replica validates (a resolved notice follows) or the cap is reached.
pub const OVERDUE_ATTRIBUTE: &str = "autobackup-overdue-alerted";

/// `maxReceiveCount` of a `RedrivePolicy` attribute (a number, or a string as some SDKs
/// write it).
pub fn max_receive_count_of(policy: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    let n = v.get("maxReceiveCount")?;
    n.as_u64()
        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
        .and_then(|n| u32::try_from(n).ok())
}

/// `(receive_count, attempt)` of a message: SQS's `ApproximateReceiveCount` and the attempt
/// number, which adds the attempts carried in [`ATTEMPTS_ATTRIBUTE`] by a re-queued copy.
/// Anyone allowed to `SendMessage` to the queue can set that attribute, so it is read as
/// untrusted: a value that is not a whole number counts as 0, one above
/// [`MAX_CARRIED_ATTEMPTS`] as that cap, and the sum saturates instead of overflowing.
pub fn attempts_of(msg: &SqsMessage) -> (u32, u32) {
    let receive_count: u32 = msg
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1);
    let carried: u32 = msg
        .message_attributes
        .get(ATTEMPTS_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|n| n.min(u64::from(MAX_CARRIED_ATTEMPTS)) as u32)
        .unwrap_or(0);
    (receive_count, carried.saturating_add(receive_count))
}

/// Where a record stands in its message's delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    /// The attempt number ([`attempts_of`]).
    pub(crate) attempt: u32,
    /// SQS's `ApproximateReceiveCount` of the message.
    pub(crate) receive_count: u32,
    /// Whether the message holds other records too.
    pub(crate) shared: bool,
}
