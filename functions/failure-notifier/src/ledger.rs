//! The alert ledger: one alert per idempotency key, across invocations and cold starts.
//!
//! SQS delivers at least once and Lambda replays a whole batch when an invocation overruns,
//! so the same failure can reach the notifier twice. Before publishing, the notifier claims
//! the record's key in an S3 bucket with a conditional write; S3 lets exactly one writer
//! create an object that does not exist ("If-None-Match: *": "uploads the object only if
//! the object key name does not already exist in the bucket specified. Otherwise, Amazon S3
//! returns a 412 Precondition Failed error", S3 User Guide, "Conditional writes").
//!
//! | ledger entry | meaning | what a second delivery does |
//! |---|---|---|
//! | none | never claimed | claims it and publishes |
//! | `claimed` younger than the claim period | another invocation is publishing | retries later (batch item failure) |
//! | `claimed` older than the claim period | its publisher died before finishing | takes it over (`If-Match` on the entry's ETag) and publishes |
//! | `published` | the alert went out | suppresses the duplicate |
//!
//! A failed publish deletes the claim, so the retry publishes. When the ledger itself cannot
//! be read or written the notifier publishes anyway: a duplicate alert is better than a
//! lost one. A lifecycle rule on the bucket expires entries (the harness sets one day).
//!
//! Floor 0: imports nothing of the crate.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a key stands before a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the key: publish, then [`Ledger::published`] or
    /// [`Ledger::release`].
    Owned,
    /// The alert for this key was already published.
    AlreadyPublished { at: DateTime<Utc> },
    /// Another invocation claimed it recently and may still be publishing.
    HeldElsewhere { since: DateTime<Utc> },
    /// The ledger could not be used; the notifier publishes without it.
    Unavailable(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
enum Entry {
    Claimed { at: DateTime<Utc> },
    Published { at: DateTime<Utc> },
}

/// The ledger bucket and how long a claim protects a publish in progress.
pub struct Ledger {
    s3: aws_sdk_s3::Client,
    bucket: String,
    claim_period: Duration,
}

impl Ledger {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String, claim_period: Duration) -> Ledger {
        Ledger {
            s3,
            bucket,
            claim_period,
        }
    }

    fn object_key(key: &str) -> String {
        format!("alerts/{key}")
    }

    async fn put(&self, key: &str, entry: &Entry, condition: Condition<'_>) -> Result<(), Put> {
        let body = serde_json::to_vec(entry).unwrap_or_default();
        let mut put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(Self::object_key(key))
            .content_type("application/json")
            .body(ByteStream::from(body));
        put = match condition {
            Condition::Absent => put.if_none_match("*"),
            Condition::Unchanged(etag) => put.if_match(etag),
            Condition::None => put,
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // 412: the precondition failed; 409: a concurrent conditional write won.
                if matches!(status, Some(412) | Some(409)) {
                    Err(Put::Lost)
                } else {
                    Err(Put::Failed(format!(
                        "{}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )))
                }
            }
        }
    }

    /// Claims `key` for publishing.
    pub async fn claim(&self, key: &str) -> Claim {
        let now = Utc::now();
        for _ in 0..3 {
            match self
                .put(key, &Entry::Claimed { at: now }, Condition::Absent)
                .await
            {
                Ok(()) => return Claim::Owned,
                Err(Put::Failed(why)) => return Claim::Unavailable(why),
                Err(Put::Lost) => {}
            }
            let got = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(Self::object_key(key))
                .send()
                .await;
            let out = match got {
                Ok(out) => out,
                // Released between the two calls: claim again.
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => continue,
                Err(e) => {
                    return Claim::Unavailable(format!(
                        "{}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                }
            };
            let etag = out.e_tag().unwrap_or_default().to_string();
            let body = match out.body.collect().await {
                Ok(b) => b.into_bytes(),
                Err(e) => return Claim::Unavailable(e.to_string()),
            };
            match found(&body, now, self.claim_period) {
                Found::Published(at) => return Claim::AlreadyPublished { at },
                Found::Held(at) => return Claim::HeldElsewhere { since: at },
                Found::TakeOver => match self
                    .put(
                        key,
                        &Entry::Claimed { at: now },
                        Condition::Unchanged(&etag),
                    )
                    .await
                {
                    Ok(()) => return Claim::Owned,
                    Err(Put::Failed(why)) => return Claim::Unavailable(why),
                    Err(Put::Lost) => continue,
                },
            }
        }
        Claim::HeldElsewhere { since: now }
    }

    /// Records that the alert for `key` went out.
    pub async fn published(&self, key: &str) {
        let entry = Entry::Published { at: Utc::now() };
        match self.put(key, &entry, Condition::None).await {
            Ok(()) => {}
            Err(Put::Lost) | Err(Put::Failed(_)) => tracing::warn!(
                target: "failure_notifier",
                key = %checksum_validator::text::escape(key),
                "recording a published alert failed; a replay may publish it again"
            ),
        }
    }

    /// Gives the claim on `key` back after a failed publish, so the retry publishes.
    pub async fn release(&self, key: &str) {
        if let Err(e) = self
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(Self::object_key(key))
            .send()
            .await
        {
            tracing::warn!(target: "failure_notifier", key = %checksum_validator::text::escape(key), error = %aws_sdk_s3::error::DisplayErrorContext(&e), "releasing a claim failed; the retry waits for the claim period");
        }
    }
}

/// What an entry found under a key means to a second writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// The alert went out at this time: the record is a duplicate.
    Published(DateTime<Utc>),
    /// Claimed at this time, within the claim period: its publisher may still be at work.
    Held(DateTime<Utc>),
    /// A claim older than the claim period (its publisher died), or an entry this version
    /// cannot read: take it over.
    TakeOver,
}

fn found(body: &[u8], now: DateTime<Utc>, claim_period: Duration) -> Found {
    match serde_json::from_slice::<Entry>(body) {
        Ok(Entry::Published { at }) => Found::Published(at),
        // A claim stamped ahead of this clock is a fresh claim: clocks differ between hosts.
        Ok(Entry::Claimed { at })
            if (now - at).to_std().unwrap_or(Duration::ZERO) < claim_period =>
        {
            Found::Held(at)
        }
        Ok(Entry::Claimed { .. }) | Err(_) => Found::TakeOver,
    }
}

enum Condition<'a> {
    Absent,
    Unchanged(&'a str),
    None,
}

enum Put {
    Lost,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const PERIOD: Duration = Duration::from_secs(120);

    fn entry(e: &Entry) -> Vec<u8> {
        serde_json::to_vec(e).unwrap()
    }

    #[rstest]
    #[case(10, true)]
    #[case(119, true)]
    #[case(120, false)]
    #[case(600, false)]
    #[case(-30, true)]
    fn a_claim_holds_for_the_claim_period(#[case] age_secs: i64, #[case] held: bool) {
        let now = Utc::now();
        let at = now - chrono::Duration::seconds(age_secs);
        let want = if held {
            Found::Held(at)
        } else {
            Found::TakeOver
        };
        assert_eq!(found(&entry(&Entry::Claimed { at }), now, PERIOD), want);
    }

    #[test]
    fn a_published_entry_suppresses_at_any_age_and_garbage_is_taken_over() {
        let now = Utc::now();
        let old = now - chrono::Duration::days(3);
        assert_eq!(
            found(&entry(&Entry::Published { at: old }), now, PERIOD),
            Found::Published(old)
        );
        assert_eq!(
            found(b"{\"state\":\"later\"}", now, PERIOD),
            Found::TakeOver
        );
        assert_eq!(found(b"", now, PERIOD), Found::TakeOver);
    }

    /// Entries live under one prefix, which the bucket's lifecycle rule expires.
    #[test]
    fn entries_live_under_the_alerts_prefix() {
        assert_eq!(Ledger::object_key("record-k1"), "alerts/record-k1");
    }
}
