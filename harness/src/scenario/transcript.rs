//! The normalised transcript of a run: the validator's decisions per object with their
//! attempts, what the notifier did, the alerts received, queue depths, DLQ contents and the
//! objects in every bucket. Rendered in a fixed order, then redacted, so the same run gives
//! the same text on every engine.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName as QA;
use checksum_validator::decision::{EvidenceKind, Verdict};
use checksum_validator::handler::Action;
use checksum_validator::RecordReport;

use crate::agent::render as agent_render;
use crate::agent::{agent_event, AgentRun};
use crate::aws::Clients;
use crate::errors::sdk;
use crate::observe::Observation;
use crate::report::redact::Redactor;
use crate::topology::Topology;

pub use crate::observe::Depth;

pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Depth, String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QA::ApproximateNumberOfMessages)
        .attribute_names(QA::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QA::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(sdk)?;
    let get = |k: QA| -> u64 {
        out.attributes()
            .and_then(|a| a.get(&k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Depth {
        visible: get(QA::ApproximateNumberOfMessages),
        in_flight: get(QA::ApproximateNumberOfMessagesNotVisible),
        delayed: get(QA::ApproximateNumberOfMessagesDelayed),
    })
}

/// One object version as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub version_id: String,
    pub size: i64,
    pub latest: bool,
    pub delete_marker: bool,
}

pub async fn list_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<Listed>, String> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .map_err(sdk)?;
    let mut items: Vec<Listed> = out
        .versions()
        .iter()
        .map(|v| Listed {
            key: v.key().unwrap_or_default().to_string(),
            version_id: v.version_id().unwrap_or_default().to_string(),
            size: v.size().unwrap_or(0),
            latest: v.is_latest().unwrap_or(false),
            delete_marker: false,
        })
        .chain(out.delete_markers().iter().map(|m| Listed {
            key: m.key().unwrap_or_default().to_string(),
            version_id: m.version_id().unwrap_or_default().to_string(),
            size: 0,
            latest: m.is_latest().unwrap_or(false),
            delete_marker: true,
        }))
        .collect();
    // Per key: the latest first, then the rest in listing order (newest first).
    items.sort_by(|a, b| a.key.cmp(&b.key).then(b.latest.cmp(&a.latest)));
    Ok(items)
}

/// Everything the transcript shows, gathered after the run settled.
pub struct Facts {
    pub observations: Vec<Observation>,
    pub depths: Vec<(&'static str, Depth)>,
    pub failure_dlq: Vec<String>,
    /// (label, listing) per bucket, primaries and replicas.
    pub buckets: Vec<(String, Vec<Listed>)>,
    /// The agent's runs, when the scenario ran any agent step.
    pub agent: Option<AgentFacts>,
    /// Every API fault installed, with its firings.
    pub faults: Vec<(
        crate::engine::faults::FaultSpec,
        Vec<crate::engine::faults::Firing>,
    )>,
}

/// What the agent did in a run, and where its files were.
pub struct AgentFacts {
    pub runs: Vec<AgentRun>,
    pub work: std::path::PathBuf,
}

/// Gathers queue depths, the failure DLQ's bodies and every bucket's versions.
pub async fn gather(
    clients: &Clients,
    topology: &Topology,
    observations: Vec<Observation>,
) -> Result<Facts, String> {
    let mut depths = Vec::new();
    for (role, q) in topology.queues.all() {
        depths.push((role, depth(&clients.sqs, &q.url).await?));
    }
    let mut failure_dlq = Vec::new();
    let peek = clients
        .sqs
        .receive_message()
        .queue_url(&topology.queues.failure_dlq.url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .wait_time_seconds(0)
        .send()
        .await
        .map_err(sdk)?;
    for m in peek.messages() {
        failure_dlq.push(m.body().unwrap_or_default().to_string());
    }
    failure_dlq.sort();
    let mut buckets = Vec::new();
    for b in topology.buckets() {
        buckets.push((
            format!("{} primary", b.category),
            list_bucket(&clients.s3, &b.primary).await?,
        ));
        for (i, d) in b.destinations().iter().enumerate() {
            let label = if i == 0 {
                format!("{} replica", b.category)
            } else {
                format!("{} replica {}", b.category, i + 1)
            };
            buckets.push((label, list_bucket(&clients.s3_replica, d).await?));
        }
    }
    Ok(Facts {
        observations,
        depths,
        failure_dlq,
        buckets,
        agent: None,
        faults: Vec::new(),
    })
}

/// What the handler did, as the transcript names it. Retrying through visibility or
/// through a re-queue is one thing to a reader (which one depends on the receive count).
pub(crate) fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Done => "done",
        Action::FailureSent => "failure record sent",
        Action::RetryAfter(_) | Action::Requeued(_) => "retry",
        Action::AlertedAndRequeued(_) => "failure record sent, still watching",
        Action::ResolvedSent => "resolved notice sent",
        Action::LeftOnQueue(_) => "left on queue",
        Action::Deferred(_) => "deferred",
    }
}

/// The outcome history of one object version (or message): each delivery's decisions in
/// order. A run of retries with the same outcome shows once, since how many retries fit in
/// a wait depends on timing; every other decision shows each time.
fn history(
    reports: &[&RecordReport],
    backups: &BTreeMap<String, usize>,
    redactor: &mut Redactor,
) -> String {
    // Deliveries (distinct messages) in the order they were first decided; a message whose
    // first decision carries earlier attempts is a re-queued continuation, not a delivery.
    let mut deliveries: Vec<&str> = Vec::new();
    let mut delivery_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    for r in reports {
        if seen.contains(&r.message_id.as_str()) {
            continue;
        }
        seen.push(&r.message_id);
        let first = reports
            .iter()
            .filter(|x| x.message_id == r.message_id)
            .map(|x| x.attempt)
            .min()
            .unwrap_or(1);
        if first <= 1 || deliveries.is_empty() {
            deliveries.push(&r.message_id);
        }
        delivery_of.insert(&r.message_id, deliveries.len() - 1);
    }
    let mut ordered: Vec<(usize, &RecordReport)> = reports
        .iter()
        .map(|r| {
            (
                delivery_of.get(r.message_id.as_str()).copied().unwrap_or(0),
                *r,
            )
        })
        .collect();
    ordered.sort_by_key(|(d, r)| (*d, r.attempt));
    let mut out = String::new();
    let mut step = 0;
    let mut last: Option<(usize, checksum_validator::Outcome, &'static str)> = None;
    for (delivery, r) in ordered {
        let name = action_name(&r.action);
        let this = (delivery, r.outcome, name);
        if name == "retry" && last == Some(this) {
            continue;
        }
        last = Some(this);
        step += 1;
        let label = if deliveries.len() > 1 {
            format!(" (delivery {})", delivery + 1)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "    {step}.{label} {} -> {name}\n      {}\n",
            r.outcome, r.detail
        ));
        out.push_str(&replica_lines(r, redactor));
        let backup = r.object.as_ref().and_then(|o| backups.get(&o.key).copied());
        out.push_str(&evidence_lines(r, backup, redactor));
    }
    out
}

/// How the replica was identified: by the source's version id, at each destination.
fn replica_lines(r: &RecordReport, redactor: &mut Redactor) -> String {
    let source = r.object.as_ref().and_then(|o| o.version_id.as_deref());
    let mut out = String::new();
    for rep in &r.replicas {
        let line = match (&rep.version_id, source) {
            (Some(v), Some(s)) if v == s => {
                format!(
                    "replica: {} version {v} (the source's version id)",
                    rep.bucket
                )
            }
            (Some(v), _) => {
                redactor.value("version", v);
                format!(
                    "replica: {} version {v} (NOT the source's version id)",
                    rep.bucket
                )
            }
            (None, _) => format!("replica: {} has no such version", rep.bucket),
        };
        out.push_str(&format!("      {line}\n"));
    }
    out
}

/// The evidence of a decision. For an agent backup (`backup` = its number) the values are
/// named after the backup instead of shown (they depend on the machine that made the archive).
fn evidence_lines(r: &RecordReport, backup: Option<usize>, redactor: &mut Redactor) -> String {
    let mut out = String::new();
    if r.evidence.is_empty() {
        return out;
    }
    out.push_str("      evidence (primary | replica):\n");
    for c in &r.evidence {
        let v = match &c.verdict {
            Verdict::Match => "match".to_string(),
            Verdict::Differ => "DIFFER".to_string(),
            Verdict::Inconclusive(why) => format!("inconclusive: {why}"),
        };
        let kind = match (&c.destination, c.kind) {
            (Some(d), k) => format!("{k} @{d}"),
            (None, EvidenceKind::Size) => "size".to_string(),
            (None, k) => k.to_string(),
        };
        let (primary, replica) = match backup {
            Some(n) if c.kind == EvidenceKind::Size => {
                let named = |v: &str| {
                    if v == c.primary {
                        agent_render::size_label(n)
                    } else {
                        v.to_string()
                    }
                };
                (named(&c.primary), named(&c.replica))
            }
            Some(n) => {
                for v in [&c.primary, &c.replica] {
                    if v.len() >= 8 {
                        redactor.literal(v, &format!("[{kind} of backup-{n}]"));
                    }
                }
                (c.primary.clone(), c.replica.clone())
            }
            None => (c.primary.clone(), c.replica.clone()),
        };
        out.push_str(&format!("        {kind:<18} {primary} | {replica}  {v}\n"));
    }
    out
}

/// Renders the header and facts, then redacts.
pub fn render(
    header: &[(String, String)],
    facts: &Facts,
    topology: &Topology,
    endpoint: &str,
) -> String {
    let mut redactor = Redactor::new();
    redactor
        .suffix(&topology.names.suffix)
        .literal(endpoint, "[endpoint]")
        // How long lag lasted and how many attempts a wait held depend on retry timing.
        .pattern(r"no replica after \d+s", "no replica after [n]s")
        .pattern(r"Attempts:    \d+", "Attempts:    [n]");
    let mut out = String::new();
    for (k, v) in header {
        out.push_str(&format!("{k}: {v}\n"));
    }
    let backups = match &facts.agent {
        Some(a) => {
            agent_render::register(&mut redactor, &a.runs, &a.work);
            out.push_str(&agent_render::runs_section(&a.runs));
            agent_render::backup_labels(&a.runs)
        }
        None => BTreeMap::new(),
    };

    // Validator decisions, grouped per object version (or per message for non-events).
    let primaries: BTreeMap<&str, &str> = topology
        .buckets()
        .iter()
        .map(|b| (b.primary.as_str(), b.category.as_str()))
        .collect();
    let mut version_order: BTreeMap<String, usize> = BTreeMap::new();
    for (_, listing) in &facts.buckets {
        for (i, l) in listing.iter().rev().enumerate() {
            version_order.entry(l.version_id.clone()).or_insert(i);
            redactor.value("version", &l.version_id);
        }
    }
    let mut groups: BTreeMap<(String, usize, String), Vec<&RecordReport>> = BTreeMap::new();
    for o in &facts.observations {
        let Observation::Decision { report, .. } = o else {
            continue;
        };
        // A record left for the next delivery near a deadline was not decided; how many
        // fall there depends on timing (the invocations section counts real overruns).
        if report.outcome == checksum_validator::Outcome::Deferred {
            continue;
        }
        redactor.value("message", &report.message_id);
        let key = match &report.object {
            Some(obj) => {
                if let Some(v) = &obj.version_id {
                    redactor.value("version", v);
                }
                for v in report.replicas.iter().filter_map(|r| r.version_id.as_ref()) {
                    redactor.value("version", v);
                }
                let cat = primaries
                    .get(obj.bucket.as_str())
                    .copied()
                    .unwrap_or(obj.bucket.as_str());
                let v = obj.version_id.clone().unwrap_or_default();
                if report.outcome == checksum_validator::Outcome::Superseded {
                    // Whether the event named the vanished version differs by engine.
                    (
                        format!("{cat}/{}", obj.key),
                        usize::MAX,
                        "version no longer exists".to_string(),
                    )
                } else {
                    (
                        format!("{cat}/{}", obj.key),
                        version_order.get(&v).copied().unwrap_or(usize::MAX),
                        format!("version {v}"),
                    )
                }
            }
            None if report.outcome == checksum_validator::Outcome::Acknowledged => (
                "(nothing to validate)".to_string(),
                0,
                format!("message {}", report.message_id),
            ),
            None => (
                "(not an S3 event)".to_string(),
                0,
                format!("message {}", report.message_id),
            ),
        };
        groups.entry(key).or_default().push(report);
    }
    out.push_str("\nvalidator decisions:\n");
    if groups.is_empty() {
        out.push_str("  none\n");
    }
    for ((object, _, which), reports) in groups {
        out.push_str(&format!("  {object} ({which})\n"));
        out.push_str(&history(&reports, &backups, &mut redactor));
    }

    let mut notified: Vec<String> = facts
        .observations
        .iter()
        .filter_map(|o| match o {
            Observation::Notified {
                queue,
                receive_count,
                report,
            } => {
                redactor.value("message", &report.message_id);
                Some(format!(
                    "  from {queue} (receive {}): {}\n",
                    receive_count
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "?".into()),
                    match (&report.publish_error, &report.ledger) {
                        (None, failure_notifier::LedgerUse::Duplicate) => format!(
                            "duplicate of an alert already published, suppressed {:?}",
                            report.alert.subject
                        ),
                        (None, _) => format!("published {:?}", report.alert.subject),
                        (Some(_), failure_notifier::LedgerUse::HeldElsewhere) => {
                            "claimed by another invocation, left on the queue for retry".to_string()
                        }
                        (Some(_), _) => "publish FAILED, left on the queue for retry".to_string(),
                    }
                ))
            }
            _ => None,
        })
        .collect();
    notified.sort();
    out.push_str("\nnotifier:\n");
    if notified.is_empty() {
        out.push_str("  none\n");
    }
    for n in notified {
        out.push_str(&n);
    }

    let mut alerts: Vec<(&String, &String)> = Vec::new();
    let mut agent_notifications: Vec<(String, String, String)> = Vec::new();
    for o in &facts.observations {
        if let Observation::Alert {
            subject,
            message,
            attributes,
        } = o
        {
            match agent_event(attributes) {
                Some(event) => {
                    agent_notifications.push((event.to_string(), subject.clone(), message.clone()))
                }
                None => alerts.push((subject, message)),
            }
        }
    }
    alerts.sort();
    out.push_str(&format!("\nalerts received: {}\n", alerts.len()));
    for (subject, message) in alerts {
        out.push_str(&format!("  - subject: {subject}\n    message:\n"));
        for line in message.lines() {
            out.push_str(&format!("      | {line}\n"));
        }
    }

    if facts.agent.is_some() || !agent_notifications.is_empty() {
        out.push_str(&agent_render::notifications_section(&agent_notifications));
    }

    if !facts.faults.is_empty() {
        out.push_str("\nfaults injected:\n");
        for (spec, fired) in &facts.faults {
            // An exact count only where the budget makes it exact (the SDK retries within it).
            let count = if spec.rate.is_none() && spec.seconds.is_none() {
                format!("fired {}", fired.len())
            } else if fired.is_empty() {
                "never fired".into()
            } else {
                "fired".into()
            };
            out.push_str(&format!("  {}: {count}\n", spec.describe()));
        }
    }

    // Invocations Lambda stopped or never ran (overruns, throttles): per queue, in order.
    let mut invocations: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &facts.observations {
        match o {
            Observation::TimedOut { queue, .. } => invocations.entry(queue).or_default().0 += 1,
            Observation::Throttled { queue, .. } => invocations.entry(queue).or_default().1 += 1,
            _ => {}
        }
    }
    if !invocations.is_empty() {
        out.push_str("\ninvocations stopped or throttled:\n");
        for (queue, (timed_out, throttled)) in invocations {
            out.push_str(&format!(
                "  {queue}: {timed_out} timed out (whole batch returned to the queue), {throttled} throttled (received, never run)\n"
            ));
        }
    }

    let errors: Vec<String> = facts
        .observations
        .iter()
        .filter_map(|o| match o {
            Observation::BatchError { queue, error } => Some(format!("  {queue}: {error}\n")),
            _ => None,
        })
        .collect();
    if !errors.is_empty() {
        out.push_str("\nbatch errors:\n");
        for e in errors {
            out.push_str(&e);
        }
    }

    out.push_str("\nqueues (visible / in flight / delayed):\n");
    for (role, d) in &facts.depths {
        out.push_str(&format!(
            "  {role:<15} {} / {} / {}\n",
            d.visible, d.in_flight, d.delayed
        ));
    }
    out.push_str(&format!(
        "\nfailure-dlq contents: {}\n",
        facts.failure_dlq.len()
    ));
    for body in &facts.failure_dlq {
        out.push_str(&format!("  - {body}\n"));
    }

    out.push_str("\nbuckets:\n");
    for (label, listing) in &facts.buckets {
        if listing.is_empty() {
            out.push_str(&format!("  {label}: empty\n"));
            continue;
        }
        out.push_str(&format!("  {label}:\n"));
        for l in listing {
            out.push_str(&format!(
                "    {} {} {}{}\n",
                l.key,
                if l.delete_marker {
                    "delete-marker".to_string()
                } else if let Some(n) = backups.get(&l.key) {
                    agent_render::size_label(*n)
                } else {
                    format!("{} bytes", l.size)
                },
                l.version_id,
                if l.latest { " (latest)" } else { "" }
            ));
        }
    }
    redactor.apply(&out)
}
