//! A run's events arranged per object version, for drawing (the HTML report's swimlanes):
//! one [`Lane`] per object version (or per message that named none: a body that is not an
//! S3 event, a test event), each with its [`Mark`]s in time order (uploaded, the event
//! accepted by the validation queue, each delivery to a function, each attempt with its
//! outcome, replicas arriving, the final decision, alerts naming it), and the queue depths
//! sampled over time. Pure: built from a [`RunOutcome`]'s events, nothing else.

use std::collections::BTreeMap;
use std::time::Duration;

use checksum_validator::report::Action;
use checksum_validator::{Outcome, RecordReport};

use crate::observe::{Arrival, Depth, Observation};
use crate::scenario::transcript::action_name;
use crate::scenario::RunOutcome;

/// What a lane follows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LaneKey {
    /// One version of an object.
    Version {
        bucket: String,
        key: String,
        version_id: String,
    },
    /// An object whose event named no version the validator could find.
    Object { bucket: String, key: String },
    /// A message that named no object.
    Message { message_id: String },
}

/// What happened at one point of a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkKind {
    /// The harness uploaded the version.
    Uploaded,
    /// The version's event (or the message) was accepted by a queue (SQS's `SentTimestamp`).
    Enqueued { queue: String },
    /// A function's poller received the message: delivery attempt `receive` of it.
    Delivered { queue: String, receive: Option<u32> },
    /// One validation attempt and what it decided.
    Attempt {
        attempt: u32,
        outcome: Outcome,
        action: &'static str,
    },
    /// A replica arrived (or failed to) at a destination.
    Replica {
        destination: String,
        arrival: Arrival,
    },
    /// The validator's verdict nothing will revisit.
    Decision { outcome: Outcome },
    /// An alert naming the version (or message) arrived.
    Alert { subject: String },
}

impl MarkKind {
    /// A stable class name for styling and tests.
    pub fn class(&self) -> &'static str {
        match self {
            MarkKind::Uploaded => "uploaded",
            MarkKind::Enqueued { .. } => "enqueued",
            MarkKind::Delivered { .. } => "delivered",
            MarkKind::Attempt { .. } => "attempt",
            MarkKind::Replica { .. } => "replica",
            MarkKind::Decision { .. } => "decision",
            MarkKind::Alert { .. } => "alert",
        }
    }

    /// What the mark says when pointed at.
    pub fn describe(&self) -> String {
        match self {
            MarkKind::Uploaded => "uploaded".into(),
            MarkKind::Enqueued { queue } => format!("event accepted by the {queue} queue"),
            MarkKind::Delivered { queue, receive } => match receive {
                Some(n) => format!("delivered from {queue} (receive {n})"),
                None => format!("delivered from {queue}"),
            },
            MarkKind::Attempt {
                attempt,
                outcome,
                action,
            } => format!("attempt {attempt}: {outcome} -> {action}"),
            MarkKind::Replica {
                destination,
                arrival,
            } => format!("replica {} at {destination}", arrival.as_str()),
            MarkKind::Decision { outcome } => format!("decision: {outcome}"),
            MarkKind::Alert { subject } => format!("alert: {subject}"),
        }
    }
}

/// One point of a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Offset from the run's start.
    pub at: Duration,
    pub kind: MarkKind,
}

/// One object version (or message) over time.
#[derive(Debug, Clone)]
pub struct Lane {
    pub key: LaneKey,
    /// `category/key#n` (n counts the key's versions in the order they appeared), or
    /// `(not an S3 event)` / `(nothing to validate)` for messages.
    pub label: String,
    /// The version id or message id, as shown beside the label.
    pub detail: String,
    pub marks: Vec<Mark>,
    /// The final decision's outcome, if the validator reached one.
    pub decision: Option<Outcome>,
    /// The message reached the validation DLQ (a function received it from there).
    pub dead_lettered: bool,
}

impl Lane {
    /// How the lane ended, in a word or two: the final decision, `dead-lettered`, or `no
    /// verdict`.
    pub fn verdict(&self) -> String {
        match (self.decision, self.dead_lettered) {
            (Some(o), _) => o.to_string(),
            (None, true) => "dead-lettered".into(),
            (None, false) => "no verdict".into(),
        }
    }
}

/// The depth samples of one queue.
#[derive(Debug, Clone)]
pub struct QueueSeries {
    pub queue: &'static str,
    pub samples: Vec<(Duration, Depth)>,
}

impl QueueSeries {
    /// The most messages the queue held in any sample.
    pub fn peak(&self) -> u64 {
        self.samples
            .iter()
            .map(|(_, d)| d.total())
            .max()
            .unwrap_or(0)
    }
}

/// A run arranged for drawing.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub lanes: Vec<Lane>,
    /// Per queue, in the topology's order.
    pub depths: Vec<QueueSeries>,
    /// The last event's offset (the axis' end).
    pub end: Duration,
}

/// A verdict on the record that nothing revisits.
fn is_final(r: &RecordReport) -> bool {
    matches!(
        r.action,
        Action::Done | Action::FailureSent | Action::ResolvedSent
    ) && r.outcome != Outcome::Deferred
}

fn lane_of(r: &RecordReport) -> LaneKey {
    match &r.object {
        Some(o) => match &o.version_id {
            Some(v) if r.outcome != Outcome::Superseded => LaneKey::Version {
                bucket: o.bucket.clone(),
                key: o.key.clone(),
                version_id: v.clone(),
            },
            _ => LaneKey::Object {
                bucket: o.bucket.clone(),
                key: o.key.clone(),
            },
        },
        None => LaneKey::Message {
            message_id: r.message_id.clone(),
        },
    }
}

/// The lines of an alert message that name what it is about: `Object:` (an escaped
/// `s3://bucket/key`), `Version:` and `Message id:`.
fn alert_names<'a>(message: &'a str, label: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
}

/// Does an alert's message name this lane?
fn alert_names_lane(message: &str, lane: &LaneKey, messages: &[&str]) -> bool {
    if let Some(id) = alert_names(message, "Message id:") {
        if messages.contains(&id) {
            return true;
        }
    }
    let object = alert_names(message, "Object:");
    let version = alert_names(message, "Version:");
    let uri = |bucket: &str, key: &str| {
        checksum_validator::text::escape(&format!("s3://{bucket}/{key}")).into_owned()
    };
    match lane {
        LaneKey::Version {
            bucket,
            key,
            version_id,
        } => object == Some(uri(bucket, key).as_str()) && version == Some(version_id.as_str()),
        LaneKey::Object { bucket, key } => {
            object == Some(uri(bucket, key).as_str()) && version.is_none()
        }
        LaneKey::Message { .. } => false,
    }
}

/// The lane following `key`, added when new.
fn lane_index(index: &mut BTreeMap<LaneKey, usize>, lanes: &mut Vec<Lane>, key: LaneKey) -> usize {
    *index.entry(key.clone()).or_insert_with(|| {
        lanes.push(Lane {
            key,
            label: String::new(),
            detail: String::new(),
            marks: Vec::new(),
            decision: None,
            dead_lettered: false,
        });
        lanes.len() - 1
    })
}

/// Arranges a run's events per object version.
pub fn build(outcome: &RunOutcome) -> Timeline {
    let events = &outcome.events;
    // Which lane each message belongs to: the object its decisions named.
    let mut lane_of_message: BTreeMap<&str, LaneKey> = BTreeMap::new();
    for e in events {
        if let Observation::Decision { report, .. } = &e.what {
            lane_of_message
                .entry(report.message_id.as_str())
                .or_insert_with(|| lane_of(report));
        }
    }
    let mut lanes: Vec<Lane> = Vec::new();
    let mut index: BTreeMap<LaneKey, usize> = BTreeMap::new();
    let mut lane = |key: LaneKey, lanes: &mut Vec<Lane>| lane_index(&mut index, lanes, key);
    let mut depths: Vec<QueueSeries> = Vec::new();
    let mut end = Duration::ZERO;
    // Messages already seen entering a queue (their first delivery shows when it was sent).
    let mut enqueued: Vec<(&str, &str)> = Vec::new();
    for e in events {
        end = end.max(e.at);
        let at = e.at;
        match &e.what {
            Observation::Uploaded {
                bucket,
                key,
                version_id,
            } => {
                let i = lane(
                    LaneKey::Version {
                        bucket: bucket.clone(),
                        key: key.clone(),
                        version_id: version_id.clone(),
                    },
                    &mut lanes,
                );
                lanes[i].marks.push(Mark {
                    at,
                    kind: MarkKind::Uploaded,
                });
            }
            Observation::Received {
                queue,
                message_id,
                receive_count,
                sent,
            } => {
                let Some(key) = lane_of_message.get(message_id.as_str()) else {
                    continue;
                };
                let i = lane(key.clone(), &mut lanes);
                if queue == "validation-dlq" {
                    lanes[i].dead_lettered = true;
                }
                if let Some(sent) = sent {
                    if !enqueued.contains(&(queue.as_str(), message_id.as_str())) {
                        enqueued.push((queue, message_id));
                        lanes[i].marks.push(Mark {
                            at: *sent,
                            kind: MarkKind::Enqueued {
                                queue: queue.clone(),
                            },
                        });
                    }
                }
                lanes[i].marks.push(Mark {
                    at,
                    kind: MarkKind::Delivered {
                        queue: queue.clone(),
                        receive: *receive_count,
                    },
                });
            }
            Observation::Decision { report, .. } => {
                let i = lane(lane_of(report), &mut lanes);
                lanes[i].marks.push(Mark {
                    at,
                    kind: MarkKind::Attempt {
                        attempt: report.attempt,
                        outcome: report.outcome,
                        action: action_name(&report.action),
                    },
                });
                if is_final(report) {
                    lanes[i].decision = Some(report.outcome);
                    lanes[i].marks.push(Mark {
                        at,
                        kind: MarkKind::Decision {
                            outcome: report.outcome,
                        },
                    });
                }
            }
            Observation::Replica {
                primary,
                key,
                version_id,
                destination,
                arrival,
            } => {
                let k = LaneKey::Version {
                    bucket: primary.clone(),
                    key: key.clone(),
                    version_id: version_id.clone(),
                };
                // Replicas of versions nothing else shows (delete markers) get no lane.
                if let Some(i) = lanes.iter().position(|l| l.key == k) {
                    lanes[i].marks.push(Mark {
                        at,
                        kind: MarkKind::Replica {
                            destination: destination.clone(),
                            arrival: *arrival,
                        },
                    });
                }
            }
            Observation::Depth { queue, depth } => {
                match depths.iter_mut().find(|s| s.queue == *queue) {
                    Some(s) => s.samples.push((at, *depth)),
                    None => depths.push(QueueSeries {
                        queue,
                        samples: vec![(at, *depth)],
                    }),
                }
            }
            Observation::Alert {
                subject,
                message,
                attributes,
            } if crate::agent::agent_event(attributes).is_none() => {
                for l in lanes.iter_mut() {
                    let messages: Vec<&str> = lane_of_message
                        .iter()
                        .filter(|(_, k)| **k == l.key)
                        .map(|(m, _)| *m)
                        .collect();
                    if alert_names_lane(message, &l.key, &messages) {
                        l.marks.push(Mark {
                            at,
                            kind: MarkKind::Alert {
                                subject: subject.clone(),
                            },
                        });
                    }
                }
            }
            _ => {}
        }
    }
    // Labels: per object, its versions numbered in the order they appeared.
    let mut versions_of: BTreeMap<(String, String), usize> = BTreeMap::new();
    for l in &mut lanes {
        l.marks.sort_by_key(|m| m.at);
        let category = |bucket: &str| {
            outcome
                .categories
                .get(bucket)
                .cloned()
                .unwrap_or_else(|| bucket.to_string())
        };
        match &l.key {
            LaneKey::Version {
                bucket,
                key,
                version_id,
            } => {
                let n = versions_of
                    .entry((bucket.clone(), key.clone()))
                    .or_default();
                *n += 1;
                l.label = format!("{}/{key}#{n}", category(bucket));
                l.detail = format!("version {version_id}");
            }
            LaneKey::Object { bucket, key } => {
                l.label = format!("{}/{key}", category(bucket));
                l.detail = "version no longer exists".into();
            }
            LaneKey::Message { message_id } => {
                let acknowledged = l.marks.iter().any(|m| {
                    matches!(
                        m.kind,
                        MarkKind::Attempt {
                            outcome: Outcome::Acknowledged,
                            ..
                        }
                    )
                });
                l.label = if acknowledged {
                    "(nothing to validate)".into()
                } else {
                    "(not an S3 event)".into()
                };
                l.detail = format!("message {message_id}");
            }
        }
    }
    Timeline { lanes, depths, end }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observe::Event;
    use checksum_validator::failure_record::ObjectRef;

    fn at(ms: u64, what: Observation) -> Event {
        Event {
            at: Duration::from_millis(ms),
            what,
        }
    }

    /// A decision's report (also the HTML report's tests' fixture).
    pub(crate) fn report(
        message: &str,
        object: Option<(&str, &str, &str)>,
        attempt: u32,
        outcome: Outcome,
        action: Action,
    ) -> RecordReport {
        RecordReport {
            message_id: message.into(),
            object: object.map(|(bucket, key, version)| ObjectRef {
                bucket: bucket.into(),
                key: key.into(),
                version_id: Some(version.into()),
                category: None,
            }),
            outcome,
            detail: String::new(),
            evidence: Vec::new(),
            attempt,
            action,
            version_source: None,
            replicas: Vec::new(),
            duration_ms: 0,
        }
    }

    pub(crate) fn decision(ms: u64, r: RecordReport) -> Event {
        at(
            ms,
            Observation::Decision {
                queue: "validation".into(),
                report: r,
            },
        )
    }

    #[test]
    fn each_version_gets_one_lane_with_its_marks_in_order() {
        let obj = Some(("docs-primary", "a.txt", "v1"));
        let obj2 = Some(("docs-primary", "a.txt", "v2"));
        let outcome = RunOutcome {
            categories: [("docs-primary".to_string(), "documents".to_string())].into(),
            events: vec![
                at(
                    100,
                    Observation::Uploaded {
                        bucket: "docs-primary".into(),
                        key: "a.txt".into(),
                        version_id: "v1".into(),
                    },
                ),
                at(
                    300,
                    Observation::Received {
                        queue: "validation".into(),
                        message_id: "m1".into(),
                        receive_count: Some(1),
                        sent: Some(Duration::from_millis(200)),
                    },
                ),
                decision(
                    400,
                    report(
                        "m1",
                        obj,
                        1,
                        Outcome::Lagging,
                        Action::RetryAfter(Duration::from_secs(1)),
                    ),
                ),
                at(
                    450,
                    Observation::Replica {
                        primary: "docs-primary".into(),
                        key: "a.txt".into(),
                        version_id: "v1".into(),
                        destination: "docs-replica".into(),
                        arrival: Arrival::Copied,
                    },
                ),
                at(
                    1400,
                    Observation::Received {
                        queue: "validation".into(),
                        message_id: "m1".into(),
                        receive_count: Some(2),
                        sent: Some(Duration::from_millis(200)),
                    },
                ),
                decision(
                    1500,
                    report("m1", obj, 2, Outcome::Validated, Action::Done),
                ),
                decision(1600, report("m2", obj2, 1, Outcome::Mismatch, Action::FailureSent)),
                at(
                    1700,
                    Observation::Alert {
                        subject: "FAILED".into(),
                        message: "Replica validation failed: mismatch\nObject:      s3://docs-primary/a.txt\nVersion:     v2\n".into(),
                        attributes: Default::default(),
                    },
                ),
                at(
                    1800,
                    Observation::Depth {
                        queue: "validation",
                        depth: Depth {
                            visible: 1,
                            in_flight: 0,
                            delayed: 0,
                        },
                    },
                ),
            ],
            ..RunOutcome::default()
        };
        let t = build(&outcome);
        assert_eq!(t.lanes.len(), 2, "{:#?}", t.lanes);
        let first = &t.lanes[0];
        assert_eq!(first.label, "documents/a.txt#1");
        assert_eq!(first.detail, "version v1");
        let classes: Vec<&str> = first.marks.iter().map(|m| m.kind.class()).collect();
        assert_eq!(
            classes,
            [
                "uploaded",
                "enqueued",
                "delivered",
                "attempt",
                "replica",
                "delivered",
                "attempt",
                "decision"
            ]
        );
        assert_eq!(first.decision, Some(Outcome::Validated));
        let second = &t.lanes[1];
        assert_eq!(second.label, "documents/a.txt#2");
        assert_eq!(second.decision, Some(Outcome::Mismatch));
        assert!(
            second.marks.iter().any(|m| m.kind
                == MarkKind::Alert {
                    subject: "FAILED".into()
                }),
            "the alert names version 2: {:?}",
            second.marks
        );
        assert!(!first.marks.iter().any(|m| m.kind.class() == "alert"));
        assert_eq!(t.depths.len(), 1);
        assert_eq!(t.depths[0].peak(), 1);
        assert_eq!(t.end, Duration::from_millis(1800));
    }

    #[test]
    fn a_message_that_is_not_an_event_is_one_lane_with_its_dead_letter_alert() {
        let mut events = Vec::new();
        for n in 1..=5u32 {
            events.push(at(
                u64::from(n) * 1000,
                Observation::Received {
                    queue: "validation".into(),
                    message_id: "m1".into(),
                    receive_count: Some(n),
                    sent: Some(Duration::from_millis(500)),
                },
            ));
            events.push(decision(
                u64::from(n) * 1000 + 10,
                report(
                    "m1",
                    None,
                    n,
                    Outcome::Malformed,
                    Action::LeftOnQueue("bad".into()),
                ),
            ));
        }
        events.push(at(
            6500,
            Observation::Received {
                queue: "validation-dlq".into(),
                message_id: "m1".into(),
                receive_count: Some(6),
                sent: Some(Duration::from_millis(6000)),
            },
        ));
        events.push(at(
            7000,
            Observation::Alert {
                subject: "DEAD-LETTER".into(),
                message: "A message could not be processed.\nMessage id:  m1\n".into(),
                attributes: Default::default(),
            },
        ));
        let t = build(&RunOutcome {
            events,
            ..RunOutcome::default()
        });
        assert_eq!(t.lanes.len(), 1);
        let lane = &t.lanes[0];
        assert_eq!(lane.label, "(not an S3 event)");
        assert_eq!(lane.decision, None, "left on the queue is no verdict");
        assert_eq!(lane.verdict(), "dead-lettered");
        let count = |class: &str| {
            lane.marks
                .iter()
                .filter(|m| m.kind.class() == class)
                .count()
        };
        assert_eq!(
            (
                count("enqueued"),
                count("delivered"),
                count("attempt"),
                count("alert")
            ),
            (2, 6, 5, 1),
            "enqueued on the queue and on its DLQ"
        );
    }
}
