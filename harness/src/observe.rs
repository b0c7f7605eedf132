//! What the harness saw while the system ran: decisions, notifier results, alerts. The
//! scenario runner waits on it and renders it; `harness up` prints it as it happens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use checksum_validator::RecordReport;
use failure_notifier::NotifyReport;
use tokio::sync::{Mutex, Notify};

/// One observation.
#[derive(Debug, Clone)]
pub enum Observation {
    /// The validator decided one record of a batch.
    Decision { queue: String, report: RecordReport },
    /// The notifier handled one record.
    Notified {
        queue: String,
        receive_count: Option<u32>,
        report: NotifyReport,
    },
    /// An alert arrived through the SNS subscription.
    Alert {
        subject: String,
        message: String,
        /// The SNS message attributes (name -> string value), e.g. the agent's `sender`
        /// and `event`.
        attributes: std::collections::BTreeMap<String, String>,
    },
    /// A handler failed as a whole (the batch stays on the queue).
    BatchError { queue: String, error: String },
    /// An invocation overran the function's timeout: the whole batch returns to the queue
    /// after its visibility timeout.
    TimedOut {
        queue: String,
        size: usize,
        timeout: Duration,
    },
    /// An invocation was throttled: its messages were received, the function never ran.
    Throttled { queue: String, size: usize },
    /// A batch was handed to a function: its size and its batch item failures.
    Batch {
        queue: String,
        size: usize,
        failed: usize,
    },
}

/// A shared, append-only log of observations with wake-ups for waiters.
#[derive(Clone, Default)]
pub struct Observations {
    inner: Arc<Mutex<Log>>,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct Log {
    items: Vec<Observation>,
    last: Option<Instant>,
}

impl Observations {
    pub async fn push(&self, o: Observation) {
        {
            let mut log = self.inner.lock().await;
            log.items.push(o);
            log.last = Some(Instant::now());
        }
        self.changed.notify_waiters();
    }

    pub async fn snapshot(&self) -> Vec<Observation> {
        self.inner.lock().await.items.clone()
    }

    /// Observations from index `from` on (for followers that remember where they were).
    pub async fn since(&self, from: usize) -> Vec<Observation> {
        let log = self.inner.lock().await;
        log.items[from.min(log.items.len())..].to_vec()
    }

    pub async fn len(&self) -> usize {
        self.inner.lock().await.items.len()
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Time since the last observation (or `None` when there is none).
    pub async fn quiet_for(&self) -> Option<Duration> {
        self.inner.lock().await.last.map(|t| t.elapsed())
    }

    /// Waits until `pred` holds over the observations, or `timeout` passes. The predicate
    /// sees the log in place (no copy), so waiting stays cheap on long runs.
    pub async fn wait_until<F>(&self, timeout: Duration, mut pred: F) -> bool
    where
        F: FnMut(&[Observation]) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if pred(&self.inner.lock().await.items) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(250)), notified).await;
        }
    }

    pub async fn alerts(&self) -> Vec<(String, String)> {
        self.snapshot()
            .await
            .into_iter()
            .filter_map(|o| match o {
                Observation::Alert {
                    subject, message, ..
                } => Some((subject, message)),
                _ => None,
            })
            .collect()
    }
}
