//! What the harness saw while the system ran, as typed events: versions uploaded, messages
//! received by a function (with their receive count and when SQS accepted them), each
//! attempt's decision, notifier results, replicas arriving, alerts, queue depth samples. The
//! scenario runner waits on them and renders them (the transcript, the HTML report's
//! timeline); `harness up` prints them as they happen.
//!
//! As in nextest's reporter (`nextest-runner/src/reporter/events.rs`: a typed event enum
//! the runner emits, renderers consume), producers only push [`Observation`]s; every output
//! is a renderer over them. Each is stamped with its offset from the log's creation (the
//! start of the run), so a run's timeline renders the same wherever it is drawn.
//!
//! A scenario keeps every observation (it renders them all). `harness up` runs for days, so
//! it keeps a ring ([`Observations::bounded`]): the last N observations plus a count per
//! kind of everything ever seen. Positions are absolute (`len()` counts every push), so a
//! follower that remembers where it was never re-reads or skips one that is still held.
//!
//! Floor 0: imports only other ground rooms (no domain types).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use checksum_validator::RecordReport;
use failure_notifier::NotifyReport;
use tokio::sync::{Mutex, Notify};

/// Visible / in flight / delayed messages of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl Depth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// How a version's copy ended at one destination (the harness replicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// The replica arrived, byte-identical.
    Copied,
    /// The replica arrived with its first byte flipped (an injected `corrupt` fault).
    Corrupted,
    /// The replica arrived byte-identical, written with another part layout.
    Relayout,
    /// A delete marker was replicated.
    DeleteMarker,
    /// Replication failed for good: the source reports FAILED.
    Failed,
    /// The replica was withheld (an injected `never` fault): the source stays PENDING.
    Withheld,
}

impl Arrival {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Copied => "copied",
            Arrival::Corrupted => "corrupted",
            Arrival::Relayout => "relayout",
            Arrival::DeleteMarker => "delete-marker",
            Arrival::Failed => "failed",
            Arrival::Withheld => "withheld",
        }
    }
}

/// One observation.
#[derive(Debug, Clone)]
pub enum Observation {
    /// The harness uploaded a version (a scenario's `upload` step).
    Uploaded {
        bucket: String,
        key: String,
        version_id: String,
    },
    /// A function's poller received a message and handed it to the function (one per
    /// record of the batch; a throttled batch's records too, followed by
    /// [`Observation::Throttled`]).
    Received {
        queue: String,
        message_id: String,
        /// `ApproximateReceiveCount`: this is the n-th delivery attempt of the message.
        receive_count: Option<u32>,
        /// When SQS accepted the message (its `SentTimestamp`), as an offset from the
        /// log's start.
        sent: Option<Duration>,
    },
    /// The harness replicator finished a version at one destination.
    Replica {
        primary: String,
        key: String,
        version_id: String,
        destination: String,
        arrival: Arrival,
    },
    /// A queue's depth, sampled while a scenario plays and settles.
    Depth { queue: &'static str, depth: Depth },
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
            Observation::Uploaded { .. } => Kind::Uploaded,
            Observation::Received { .. } => Kind::Received,
            Observation::Replica { .. } => Kind::Replica,
            Observation::Depth { .. } => Kind::Depth,
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
    Uploaded,
    Received,
    Replica,
    Depth,
}

impl Kind {
    /// What the functions and the alert sink did (their results and alerts). Only these
    /// count for [`Observations::quiet_for`]: the harness's own records (uploads, receives
    /// before a result, replicas, depth samples) never keep a run from settling.
    pub fn is_function_result(self) -> bool {
        !matches!(
            self,
            Kind::Uploaded | Kind::Received | Kind::Replica | Kind::Depth
        )
    }
}

/// An observation with its offset from the start of the log (the run).
#[derive(Debug, Clone)]
pub struct Event {
    pub at: Duration,
    pub what: Observation,
}

/// A shared log of observations with wake-ups for waiters: append-only, or a ring.
#[derive(Clone, Default)]
pub struct Observations {
    inner: Arc<Mutex<Log>>,
    changed: Arc<Notify>,
}

struct Log {
    items: VecDeque<Observation>,
    /// When each held item was pushed, as an offset from `start` (parallel to `items`).
    stamps: VecDeque<Duration>,
    start: Instant,
    /// `start` on the wall clock, for timestamps other services give (SQS's `SentTimestamp`).
    epoch: SystemTime,
    /// Observations dropped from the front (the ring's oldest).
    evicted: usize,
    /// `None`: keep everything.
    cap: Option<usize>,
    counts: std::collections::BTreeMap<Kind, u64>,
    last: Option<Instant>,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            items: VecDeque::new(),
            stamps: VecDeque::new(),
            start: Instant::now(),
            epoch: SystemTime::now(),
            evicted: 0,
            cap: None,
            counts: Default::default(),
            last: None,
        }
    }
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
            let kind = o.kind();
            *log.counts.entry(kind).or_default() += 1;
            let now = Instant::now();
            let at = now.saturating_duration_since(log.start);
            log.items.push_back(o);
            log.stamps.push_back(at);
            if let Some(cap) = log.cap {
                while log.items.len() > cap {
                    log.items.pop_front();
                    log.stamps.pop_front();
                    log.evicted += 1;
                }
            }
            if kind.is_function_result() {
                log.last = Some(now);
            }
        }
        self.changed.notify_waiters();
    }

    /// The observations held (all of them unless bounded).
    pub async fn snapshot(&self) -> Vec<Observation> {
        self.inner.lock().await.items.iter().cloned().collect()
    }

    /// The observations held, each with its offset from the start of the log.
    pub async fn timeline(&self) -> Vec<Event> {
        let log = self.inner.lock().await;
        log.items
            .iter()
            .zip(&log.stamps)
            .map(|(o, at)| Event {
                at: *at,
                what: o.clone(),
            })
            .collect()
    }

    /// A wall-clock time in milliseconds since the Unix epoch (SQS's `SentTimestamp`) as an
    /// offset from the start of the log; a time before the start is the start.
    pub async fn offset_of_epoch_millis(&self, millis: u64) -> Duration {
        let epoch = self.inner.lock().await.epoch;
        let start = epoch
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_millis(millis).saturating_sub(start)
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

    /// Time since the last function result or alert (or `None` when there is none; see
    /// [`Kind::is_function_result`]).
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

    /// Every observation carries its offset from the log's start, in order; the harness's
    /// own records (a depth sample) never make the system look busy.
    #[tokio::test]
    async fn observations_are_stamped_and_samples_are_not_activity() {
        let o = Observations::default();
        o.push(Observation::Depth {
            queue: "validation",
            depth: Depth::default(),
        })
        .await;
        assert_eq!(o.quiet_for().await, None, "a sample is no activity");
        tokio::time::sleep(Duration::from_millis(20)).await;
        o.push(batch(1)).await;
        assert!(o.quiet_for().await.is_some());
        let t = o.timeline().await;
        assert_eq!(t.len(), 2);
        assert!(t[1].at >= t[0].at + Duration::from_millis(20), "{t:?}");
        assert!(matches!(t[1].what, Observation::Batch { size: 1, .. }));
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let offset = o.offset_of_epoch_millis(now_ms).await;
        assert!(offset >= Duration::from_millis(20) && offset < Duration::from_secs(5));
        assert_eq!(o.offset_of_epoch_millis(0).await, Duration::ZERO);
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
