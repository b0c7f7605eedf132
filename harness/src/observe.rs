//! What the harness saw while the system ran: decisions, notifier results, alerts. The
//! scenario runner waits on it and renders it; `harness up` prints it as it happens.
//!
//! A scenario keeps every observation (it renders them all). `harness up` runs for days, so
//! it keeps a ring ([`Observations::bounded`]): the last N observations plus a count per
//! kind of everything ever seen. Positions are absolute (`len()` counts every push), so a
//! follower that remembers where it was never re-reads or skips one that is still held.

use std::collections::VecDeque;
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

impl Observation {
    /// The kind, for counting.
    pub fn kind(&self) -> Kind {
        match self {
            Observation::Decision { .. } => Kind::Decision,
            Observation::Notified { .. } => Kind::Notified,
            Observation::Alert { .. } => Kind::Alert,
            Observation::BatchError { .. } => Kind::BatchError,
            Observation::TimedOut { .. } => Kind::TimedOut,
            Observation::Throttled { .. } => Kind::Throttled,
            Observation::Batch { .. } => Kind::Batch,
        }
    }
}

/// The kinds of [`Observation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Decision,
    Notified,
    Alert,
    BatchError,
    TimedOut,
    Throttled,
    Batch,
}

/// A shared log of observations with wake-ups for waiters: append-only, or a ring.
#[derive(Clone, Default)]
pub struct Observations {
    inner: Arc<Mutex<Log>>,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct Log {
    items: VecDeque<Observation>,
    /// Observations dropped from the front (the ring's oldest).
    evicted: usize,
    /// `None`: keep everything.
    cap: Option<usize>,
    counts: std::collections::BTreeMap<Kind, u64>,
    last: Option<Instant>,
}

impl Observations {
    /// A ring holding the last `cap` observations (at least 1); counts cover all of them.
    pub fn bounded(cap: usize) -> Observations {
        Observations {
            inner: Arc::new(Mutex::new(Log {
                cap: Some(cap.max(1)),
                ..Log::default()
            })),
            changed: Arc::default(),
        }
    }

    pub async fn push(&self, o: Observation) {
        {
            let mut log = self.inner.lock().await;
            *log.counts.entry(o.kind()).or_default() += 1;
            log.items.push_back(o);
            if let Some(cap) = log.cap {
                while log.items.len() > cap {
                    log.items.pop_front();
                    log.evicted += 1;
                }
            }
            log.last = Some(Instant::now());
        }
        self.changed.notify_waiters();
    }

    /// The observations held (all of them unless bounded).
    pub async fn snapshot(&self) -> Vec<Observation> {
        self.inner.lock().await.items.iter().cloned().collect()
    }

    /// Observations from absolute position `from` on (for followers that remember where they
    /// were; `from + returned.len()` is where to continue). Positions already evicted are
    /// skipped: the follower continues at the oldest one held.
    pub async fn since(&self, from: usize) -> (usize, Vec<Observation>) {
        let log = self.inner.lock().await;
        let start = from.max(log.evicted);
        let items = log
            .items
            .iter()
            .skip(start - log.evicted)
            .cloned()
            .collect();
        (start, items)
    }

    /// Every observation ever pushed (held or evicted).
    pub async fn len(&self) -> usize {
        let log = self.inner.lock().await;
        log.evicted + log.items.len()
    }

    /// How many observations are held now.
    pub async fn held(&self) -> usize {
        self.inner.lock().await.items.len()
    }

    /// How many observations of `kind` were ever pushed.
    pub async fn count(&self, kind: Kind) -> u64 {
        self.inner
            .lock()
            .await
            .counts
            .get(&kind)
            .copied()
            .unwrap_or(0)
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
            if pred(self.inner.lock().await.items.make_contiguous()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(i: usize) -> Observation {
        Observation::Batch {
            queue: "validation".into(),
            size: i,
            failed: 0,
        }
    }

    /// Finding 16: a bounded log holds the last N, counts everything, and a follower sees
    /// each held observation once, in order.
    #[tokio::test]
    async fn a_bounded_log_keeps_the_last_n_and_counts_all() {
        let o = Observations::bounded(1000);
        let mut followed = Vec::new();
        let mut at = 0;
        for i in 0..100_000 {
            o.push(batch(i)).await;
            if i % 10_007 == 0 {
                let (start, fresh) = o.since(at).await;
                for f in &fresh {
                    if let Observation::Batch { size, .. } = f {
                        followed.push(*size);
                    }
                }
                at = start + fresh.len();
            }
        }
        assert_eq!(o.held().await, 1000);
        assert_eq!(o.len().await, 100_000);
        assert_eq!(o.count(Kind::Batch).await, 100_000);
        assert_eq!(o.count(Kind::Alert).await, 0);
        let snap = o.snapshot().await;
        assert!(matches!(snap[0], Observation::Batch { size: 99_000, .. }));
        assert!(
            followed.windows(2).all(|w| w[0] < w[1]),
            "in order, no repeats"
        );
        let (start, rest) = o.since(at).await;
        assert_eq!(start + rest.len(), 100_000);
    }

    #[tokio::test]
    async fn an_unbounded_log_keeps_everything() {
        let o = Observations::default();
        for i in 0..5000 {
            o.push(batch(i)).await;
        }
        assert_eq!(o.held().await, 5000);
        let (start, all) = o.since(0).await;
        assert_eq!((start, all.len()), (0, 5000));
    }
}
