//! A scenario's `[expect]` checked against what a run observed and left behind: alerts,
//! agent notifications, backups, batch sizes and each object version's final decision.

use std::collections::BTreeMap;

use super::file::Scenario;
use super::transcript;
use crate::agent::{agent_event, AgentSession};
use crate::observe::Observation;

pub(super) fn decided(obs: &[Observation], bucket: &str, key: &str, outcome: &str) -> bool {
    obs.iter().any(|o| match o {
        Observation::Decision { report, .. } => {
            report.outcome.as_str() == outcome
                && report
                    .object
                    .as_ref()
                    .is_some_and(|x| x.bucket == bucket && x.key == key)
        }
        _ => false,
    })
}

/// Alerts from the pipeline (the failure-notifier), not the agent's notifications.
pub(super) fn alert_count(obs: &[Observation]) -> usize {
    obs.iter()
        .filter(|o| matches!(o, Observation::Alert { attributes, .. } if agent_event(attributes).is_none()))
        .count()
}

fn agent_notification_counts(obs: &[Observation]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in obs {
        if let Observation::Alert { attributes, .. } = o {
            if let Some(event) = agent_event(attributes) {
                *out.entry(event.to_string()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// The validator's last decision on an object (any version, in the order observed).
fn final_decision<'a>(
    obs: &'a [Observation],
    bucket: &str,
    key: &str,
) -> Option<&'a checksum_validator::RecordReport> {
    decisions(obs, bucket, key).last().copied()
}

/// Every decision on an object, in the order observed.
fn decisions<'a>(
    obs: &'a [Observation],
    bucket: &str,
    key: &str,
) -> Vec<&'a checksum_validator::RecordReport> {
    obs.iter()
        .filter_map(|o| match o {
            Observation::Decision { report, .. }
                if report
                    .object
                    .as_ref()
                    .is_some_and(|x| x.bucket == bucket && x.key == key) =>
            {
                Some(report)
            }
            _ => None,
        })
        .collect()
}

pub(super) fn check_expectations(
    scenario: &Scenario,
    topology: &crate::topology::Topology,
    facts: &transcript::Facts,
    agent: &AgentSession,
    uploads: &[(String, String, String)],
) -> Vec<String> {
    let obs = facts.observations.as_slice();
    let mut unmet = Vec::new();
    if let Some(want) = &scenario.expect.agent_notifications {
        let got = agent_notification_counts(obs);
        for event in super::check::AGENT_EVENTS {
            let (w, g) = (
                want.get(event).copied().unwrap_or(0),
                got.get(event).copied().unwrap_or(0),
            );
            if w != g {
                unmet.push(format!(
                    "expected {w} agent {event} notification(s), got {g}"
                ));
            }
        }
    }
    for (category, want) in &scenario.expect.backups {
        let prefix = format!("backups/{category}/");
        let label = format!("{category} primary");
        let got = facts
            .buckets
            .iter()
            .filter(|(l, _)| *l == label)
            .flat_map(|(_, listing)| listing.iter())
            .filter(|l| l.latest && !l.delete_marker && l.key.starts_with(&prefix))
            .count();
        if got != *want {
            unmet.push(format!(
                "expected {want} backup(s) under {prefix} at the end, found {got}"
            ));
        }
    }
    if let Some(want) = scenario.expect.backups_validated {
        let stored = agent.stored_keys();
        let mut validated = 0;
        for (bucket, key) in &stored {
            match final_decision(obs, bucket, key) {
                Some(r) if r.outcome == checksum_validator::Outcome::Validated => validated += 1,
                Some(r) => unmet.push(format!(
                    "backup {key}: final decision {}, expected validated",
                    r.outcome
                )),
                None => unmet.push(format!("backup {key}: the validator never decided it")),
            }
        }
        if validated != want || stored.len() != want {
            unmet.push(format!(
                "expected {want} validated backup(s), {validated} of {} stored were validated",
                stored.len()
            ));
        }
    }
    if let Some(want) = scenario.expect.alerts {
        let got = alert_count(obs);
        if got != want {
            unmet.push(format!("expected {want} alert(s), got {got}"));
        }
    }
    if let Some(want) = scenario.expect.largest_batch {
        let batches: Vec<(usize, usize)> = obs
            .iter()
            .filter_map(|o| match o {
                Observation::Batch {
                    queue,
                    size,
                    failed,
                } if queue == "validation" => Some((*size, *failed)),
                _ => None,
            })
            .collect();
        let largest = batches.iter().map(|(s, _)| *s).max().unwrap_or(0);
        if largest != want {
            unmet.push(format!(
                "expected a validator batch of {want} records, largest was {largest} (batches: {batches:?})"
            ));
        }
        if let Some(want_failed) = scenario.expect.largest_batch_failures {
            if let Some((_, failed)) = batches.iter().find(|(s, _)| *s == largest) {
                if *failed != want_failed {
                    unmet.push(format!(
                        "expected {want_failed} batch item failure(s) in the largest batch, got {failed}"
                    ));
                }
            }
        }
    }
    for (named, want) in &scenario.expect.outcomes {
        let (object, nth) = super::check::split_version(named);
        let Some((cat, key)) = object.split_once('/') else {
            continue;
        };
        let Some(bucket) = topology.category(cat).map(|b| b.primary.clone()) else {
            continue;
        };
        let all = decisions(obs, &bucket, key);
        // Versions of the key: the harness's uploads in order, then any other version the
        // validator decided (uploaded by the agent or another client).
        let mut versions: Vec<String> = uploads
            .iter()
            .filter(|(b, k, _)| *b == bucket && k == key)
            .map(|(_, _, v)| v.clone())
            .collect();
        for r in &all {
            if let Some(v) = r.object.as_ref().and_then(|o| o.version_id.clone()) {
                if !versions.contains(&v) {
                    versions.push(v);
                }
            }
        }
        let checked: Vec<(usize, Option<String>)> = match nth {
            Some(n) => match versions.get(n - 1) {
                Some(v) => vec![(n, Some(v.clone()))],
                None => {
                    unmet.push(format!(
                        "{named}: expected {want}, but the key has {} version(s)",
                        versions.len()
                    ));
                    continue;
                }
            },
            None if versions.is_empty() => vec![(0, None)],
            None => versions
                .iter()
                .enumerate()
                .map(|(i, v)| (i + 1, Some(v.clone())))
                .collect(),
        };
        for (n, version) in checked {
            let last = all.iter().rev().find(|r| {
                version.is_none()
                    || r.object.as_ref().and_then(|o| o.version_id.as_ref()) == version.as_ref()
            });
            let label = if n == 0 {
                object.to_string()
            } else {
                format!("{object}#{n}")
            };
            match last {
                Some(r) if r.outcome.as_str() == want => {}
                Some(r) => unmet.push(format!(
                    "{label}: expected {want}, final decision was {}",
                    r.outcome
                )),
                None => unmet.push(format!(
                    "{label}: expected {want}, but the validator never decided it"
                )),
            }
        }
    }
    unmet
}
