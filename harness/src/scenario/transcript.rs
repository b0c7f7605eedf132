//! The normalised transcript of a run: the validator's decisions per object with their
//! attempts, what the notifier did, the alerts received, queue depths, DLQ contents and the
//! objects in every bucket. Rendered in a fixed order, then redacted, so the same run gives
//! the same text on every engine.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName as QA;
use checksum_validator::decision::{EvidenceKind, Verdict};
use checksum_validator::report::Action;
use checksum_validator::RecordReport;

use crate::agent::render as agent_render;
use crate::agent::{agent_event, AgentRun};
use crate::aws::Clients;
use crate::errors::sdk;
use crate::observe::Observation;
use crate::redact::Redactor;
use crate::s3util::{listed_key, LISTING_ENCODING};
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
        .encoding_type(LISTING_ENCODING)
        .send()
        .await
        .map_err(sdk)?;
    let encoding = out.encoding_type();
    let mut items: Vec<Listed> = out
        .versions()
        .iter()
        .map(|v| Listed {
            key: listed_key(v.key().unwrap_or_default(), encoding),
            version_id: v.version_id().unwrap_or_default().to_string(),
            size: v.size().unwrap_or(0),
            latest: v.is_latest().unwrap_or(false),
            delete_marker: false,
        })
        .chain(out.delete_markers().iter().map(|m| Listed {
            key: listed_key(m.key().unwrap_or_default(), encoding),
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
        crate::fidelity::faults::FaultSpec,
        Vec<crate::fidelity::faults::Firing>,
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

/// One decision of an object version's history as the transcript shows it.
struct Shown<'a> {
    /// `Some(n)` (0-based) when the version had more than one delivery.
    delivery: Option<usize>,
    report: &'a RecordReport,
}

/// The validator's decisions on one object version (or message).
struct DecisionGroup<'a> {
    /// `category/key`, or `(not an S3 event)` / `(nothing to validate)`.
    object: String,
    /// `version V`, `version no longer exists` or `message M`.
    which: String,
    shown: Vec<Shown<'a>>,
}

/// The outcome history of one object version (or message): each delivery's decisions in
/// order. A run of retries with the same outcome shows once, since how many retries fit in
/// a wait depends on timing; every other decision shows each time.
fn history<'a>(reports: &[&'a RecordReport]) -> Vec<Shown<'a>> {
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
    let mut shown = Vec::new();
    let mut last: Option<(usize, checksum_validator::Outcome, &'static str)> = None;
    for (delivery, r) in ordered {
        let name = action_name(&r.action);
        let this = (delivery, r.outcome, name);
        if name == "retry" && last == Some(this) {
            continue;
        }
        last = Some(this);
        shown.push(Shown {
            delivery: (deliveries.len() > 1).then_some(delivery),
            report: r,
        });
    }
    shown
}

/// The primary bucket -> category of a topology.
fn primaries(topology: &Topology) -> BTreeMap<&str, &str> {
    topology
        .buckets()
        .iter()
        .map(|b| (b.primary.as_str(), b.category.as_str()))
        .collect()
}

/// Each version's place in its bucket listing (oldest first), for ordering the groups.
fn version_order(facts: &Facts) -> BTreeMap<String, usize> {
    let mut order = BTreeMap::new();
    for (_, listing) in &facts.buckets {
        for (i, l) in listing.iter().rev().enumerate() {
            order.entry(l.version_id.clone()).or_insert(i);
        }
    }
    order
}

/// The decisions the transcript shows: a record left for the next delivery near a deadline
/// was not decided (how many fall there depends on timing; the invocations section counts
/// real overruns).
fn shown_decisions(facts: &Facts) -> impl Iterator<Item = &RecordReport> {
    facts.observations.iter().filter_map(|o| match o {
        Observation::Decision { report, .. }
            if report.outcome != checksum_validator::Outcome::Deferred =>
        {
            Some(report)
        }
        _ => None,
    })
}

/// Validator decisions, grouped per object version (or per message for non-events), in
/// the order of the groups' keys.
fn decision_groups<'a>(facts: &'a Facts, topology: &Topology) -> Vec<DecisionGroup<'a>> {
    let primaries = primaries(topology);
    let version_order = version_order(facts);
    let mut groups: BTreeMap<(String, usize, String), Vec<&RecordReport>> = BTreeMap::new();
    for report in shown_decisions(facts) {
        let key = match &report.object {
            Some(obj) => {
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
    groups
        .into_iter()
        .map(|((object, _, which), reports)| DecisionGroup {
            object,
            which,
            shown: history(&reports),
        })
        .collect()
}

/// Everything the sections show, prepared from the facts before anything is written.
struct Prepared<'a> {
    /// Agent backup key -> its number (`backup-N`).
    backups: BTreeMap<String, usize>,
    decisions: Vec<DecisionGroup<'a>>,
    /// One line per notifier result, sorted.
    notified: Vec<String>,
    /// The pipeline's alerts (subject, message), sorted.
    alerts: Vec<(&'a str, &'a str)>,
    /// The agent's notifications (event, subject, message), in arrival order.
    agent_notifications: Vec<(String, String, String)>,
    /// Per queue: invocations that timed out, and that were throttled.
    invocations: BTreeMap<&'a str, (usize, usize)>,
    /// One line per batch error, in order.
    batch_errors: Vec<String>,
}

impl<'a> Prepared<'a> {
    fn of(facts: &'a Facts, topology: &Topology) -> Prepared<'a> {
        let mut alerts = Vec::new();
        let mut agent_notifications = Vec::new();
        let mut invocations: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut batch_errors = Vec::new();
        let mut notified = Vec::new();
        for o in &facts.observations {
            match o {
                Observation::Notified {
                    queue,
                    receive_count,
                    report,
                } => notified.push(notifier_line(queue, *receive_count, report)),
                Observation::Alert {
                    subject,
                    message,
                    attributes,
                } => match agent_event(attributes) {
                    Some(event) => agent_notifications.push((
                        event.to_string(),
                        subject.clone(),
                        message.clone(),
                    )),
                    None => alerts.push((subject.as_str(), message.as_str())),
                },
                Observation::TimedOut { queue, .. } => invocations.entry(queue).or_default().0 += 1,
                Observation::Throttled { queue, .. } => {
                    invocations.entry(queue).or_default().1 += 1
                }
                Observation::BatchError { queue, error } => {
                    batch_errors.push(format!("  {queue}: {error}\n"))
                }
                _ => {}
            }
        }
        notified.sort();
        alerts.sort();
        Prepared {
            backups: facts
                .agent
                .as_ref()
                .map(|a| agent_render::backup_labels(&a.runs))
                .unwrap_or_default(),
            decisions: decision_groups(facts, topology),
            notified,
            alerts,
            agent_notifications,
            invocations,
            batch_errors,
        }
    }
}

/// The redactor for a run: every volatile value the transcript may show (the suffix, the
/// endpoint, the agent's files and checksums, version and message ids, the evidence of
/// agent backups), registered from the facts before anything is written.
fn redactor(
    facts: &Facts,
    prepared: &Prepared<'_>,
    topology: &Topology,
    endpoint: &str,
) -> Redactor {
    let mut redactor = Redactor::new();
    redactor
        .suffix(&topology.names.suffix)
        .literal(endpoint, "[endpoint]")
        // How long lag lasted and how many attempts a wait held depend on retry timing.
        .pattern(r"no replica after \d+s", "no replica after [n]s")
        .pattern(r"Attempts:    \d+", "Attempts:    [n]");
    if let Some(a) = &facts.agent {
        agent_render::register(&mut redactor, &a.runs, &a.work);
    }
    for (_, listing) in &facts.buckets {
        for l in listing.iter().rev() {
            redactor.value("version", &l.version_id);
        }
    }
    for report in shown_decisions(facts) {
        redactor.value("message", &report.message_id);
        if let Some(obj) = &report.object {
            if let Some(v) = &obj.version_id {
                redactor.value("version", v);
            }
            for v in report.replicas.iter().filter_map(|r| r.version_id.as_ref()) {
                redactor.value("version", v);
            }
        }
    }
    for group in &prepared.decisions {
        for s in &group.shown {
            let r = s.report;
            let source = r.object.as_ref().and_then(|o| o.version_id.as_deref());
            for v in r
                .replicas
                .iter()
                .filter_map(|rep| rep.version_id.as_deref())
            {
                if Some(v) != source {
                    redactor.value("version", v);
                }
            }
            // An agent backup's checksums depend on the machine that made the archive:
            // named after the backup instead.
            let backup = r.object.as_ref().and_then(|o| prepared.backups.get(&o.key));
            if let Some(n) = backup {
                for c in r.evidence.iter().filter(|c| c.kind != EvidenceKind::Size) {
                    for v in [&c.primary, &c.replica] {
                        if v.len() >= 8 {
                            redactor.literal(v, &format!("[{} of backup-{n}]", evidence_kind(c)));
                        }
                    }
                }
            }
        }
    }
    for o in &facts.observations {
        if let Observation::Notified { report, .. } = o {
            redactor.value("message", &report.message_id);
        }
    }
    redactor
}

/// How the replica was identified: by the source's version id, at each destination.
fn replica_lines(r: &RecordReport) -> String {
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
            (Some(v), _) => format!(
                "replica: {} version {v} (NOT the source's version id)",
                rep.bucket
            ),
            (None, _) => format!("replica: {} has no such version", rep.bucket),
        };
        out.push_str(&format!("      {line}\n"));
    }
    out
}

/// The name of a comparison: its kind, and the destination it was made at.
fn evidence_kind(c: &checksum_validator::decision::Comparison) -> String {
    match (&c.destination, c.kind) {
        (Some(d), k) => format!("{k} @{d}"),
        (None, EvidenceKind::Size) => "size".to_string(),
        (None, k) => k.to_string(),
    }
}

/// The evidence of a decision. For an agent backup (`backup` = its number) the sizes are
/// named after the backup (they depend on the machine that made the archive; its
/// checksums are redacted the same way, see [`redactor`]).
fn evidence_lines(r: &RecordReport, backup: Option<usize>) -> String {
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
        let kind = evidence_kind(c);
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
            _ => (c.primary.clone(), c.replica.clone()),
        };
        out.push_str(&format!("        {kind:<18} {primary} | {replica}  {v}\n"));
    }
    out
}

fn header_section(header: &[(String, String)]) -> String {
    header.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

fn decisions_section(groups: &[DecisionGroup<'_>], backups: &BTreeMap<String, usize>) -> String {
    let mut out = String::from("\nvalidator decisions:\n");
    if groups.is_empty() {
        out.push_str("  none\n");
    }
    for g in groups {
        out.push_str(&format!("  {} ({})\n", g.object, g.which));
        for (step, s) in g.shown.iter().enumerate() {
            let r = s.report;
            let label = match s.delivery {
                Some(d) => format!(" (delivery {})", d + 1),
                None => String::new(),
            };
            out.push_str(&format!(
                "    {}.{label} {} -> {}\n      {}\n",
                step + 1,
                r.outcome,
                action_name(&r.action),
                r.detail
            ));
            out.push_str(&replica_lines(r));
            let backup = r.object.as_ref().and_then(|o| backups.get(&o.key).copied());
            out.push_str(&evidence_lines(r, backup));
        }
    }
    out
}

/// What the notifier did with one record.
fn notifier_line(
    queue: &str,
    receive_count: Option<u32>,
    report: &failure_notifier::NotifyReport,
) -> String {
    format!(
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
    )
}

fn notifier_section(notified: &[String]) -> String {
    let mut out = String::from("\nnotifier:\n");
    if notified.is_empty() {
        out.push_str("  none\n");
    }
    out.extend(notified.iter().map(String::as_str));
    out
}

fn alerts_section(alerts: &[(&str, &str)]) -> String {
    let mut out = format!("\nalerts received: {}\n", alerts.len());
    for (subject, message) in alerts {
        out.push_str(&format!("  - subject: {subject}\n    message:\n"));
        for line in message.lines() {
            out.push_str(&format!("      | {line}\n"));
        }
    }
    out
}

fn faults_section(
    faults: &[(
        crate::fidelity::faults::FaultSpec,
        Vec<crate::fidelity::faults::Firing>,
    )],
) -> String {
    if faults.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nfaults injected:\n");
    for (spec, fired) in faults {
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
    out
}

/// Invocations Lambda stopped or never ran (overruns, throttles): per queue, in order.
fn invocations_section(invocations: &BTreeMap<&str, (usize, usize)>) -> String {
    if invocations.is_empty() {
        return String::new();
    }
    let mut out = String::from("\ninvocations stopped or throttled:\n");
    for (queue, (timed_out, throttled)) in invocations {
        out.push_str(&format!(
            "  {queue}: {timed_out} timed out (whole batch returned to the queue), {throttled} throttled (received, never run)\n"
        ));
    }
    out
}

fn batch_errors_section(errors: &[String]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nbatch errors:\n");
    out.extend(errors.iter().map(String::as_str));
    out
}

fn queues_section(depths: &[(&'static str, Depth)]) -> String {
    let mut out = String::from("\nqueues (visible / in flight / delayed):\n");
    for (role, d) in depths {
        out.push_str(&format!(
            "  {role:<15} {} / {} / {}\n",
            d.visible, d.in_flight, d.delayed
        ));
    }
    out
}

fn failure_dlq_section(bodies: &[String]) -> String {
    let mut out = format!("\nfailure-dlq contents: {}\n", bodies.len());
    for body in bodies {
        out.push_str(&format!("  - {body}\n"));
    }
    out
}

fn buckets_section(buckets: &[(String, Vec<Listed>)], backups: &BTreeMap<String, usize>) -> String {
    let mut out = String::from("\nbuckets:\n");
    for (label, listing) in buckets {
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
    out
}

/// Renders the header and facts, section by section, then redacts.
pub fn render(
    header: &[(String, String)],
    facts: &Facts,
    topology: &Topology,
    endpoint: &str,
) -> String {
    let prepared = Prepared::of(facts, topology);
    let redactor = redactor(facts, &prepared, topology, endpoint);
    let mut out = header_section(header);
    if let Some(a) = &facts.agent {
        out.push_str(&agent_render::runs_section(&a.runs));
    }
    out.push_str(&decisions_section(&prepared.decisions, &prepared.backups));
    out.push_str(&notifier_section(&prepared.notified));
    out.push_str(&alerts_section(&prepared.alerts));
    if facts.agent.is_some() || !prepared.agent_notifications.is_empty() {
        out.push_str(&agent_render::notifications_section(
            &prepared.agent_notifications,
        ));
    }
    out.push_str(&faults_section(&facts.faults));
    out.push_str(&invocations_section(&prepared.invocations));
    out.push_str(&batch_errors_section(&prepared.batch_errors));
    out.push_str(&queues_section(&facts.depths));
    out.push_str(&failure_dlq_section(&facts.failure_dlq));
    out.push_str(&buckets_section(&facts.buckets, &prepared.backups));
    legible(&redactor.apply(&out))
}

/// The transcript as a reviewer can read it: a control character (a key may hold any,
/// `\x01` among them) written as `\xNN`, and a run of 32 or more of one character (a
/// 1,024-byte key) as `{c×N}`. Line breaks stay.
pub fn legible(text: &str) -> String {
    const RUN: usize = 32;
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&d| d == c).count();
        let shown = if c != '\n' && (c.is_control()) {
            format!("\\x{:02x}", c as u32)
        } else {
            c.to_string()
        };
        if run >= RUN {
            out.push_str(&format!("{{{shown}×{run}}}"));
            i += run;
        } else {
            out.push_str(&shown);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod legible_tests {
    use super::legible;

    #[test]
    fn control_characters_and_long_runs_are_written_legibly() {
        assert_eq!(legible("a\u{1}b\u{1f}c\n"), "a\\x01b\\x1fc\n");
        let key = format!("long/{}", "k".repeat(1019));
        assert_eq!(legible(&key), "long/{k×1019}");
        assert_eq!(legible(&"k".repeat(31)), "k".repeat(31));
        assert_eq!(legible(&"\u{1}".repeat(40)), "{\\x01×40}");
        assert_eq!(
            legible("plain é 日本\n  indented"),
            "plain é 日本\n  indented"
        );
    }
}
