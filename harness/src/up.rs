//! `harness up`: the whole backup system running locally until Ctrl-C, for any AWS client.
//!
//! The running `up` process records where everything is in a state file
//! (`<cache>/run/up-<engine>.json`) and appends decisions and alerts to JSON-lines files
//! beside it, so `harness status`, `harness alerts` and `harness redrive` work from another
//! terminal. A second `harness up` for the same engine refuses while the first is alive.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::observe::{Observation, Observations};
use crate::topology::Topology;

/// What `harness up` publishes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpState {
    pub pid: u32,
    pub engine: String,
    /// The fidelity layer: what clients should use (they see what AWS would show).
    pub endpoint: String,
    /// The raw engine, for debugging the layer (replicas show the engine's version ids).
    pub engine_endpoint: String,
    /// pid of the engine process the `up` started (none when attached or external).
    pub engine_pid: Option<u32>,
    pub profile: String,
    pub replication: String,
    pub primary_region: String,
    pub replica_region: String,
    pub suffix: String,
    pub buckets: Vec<BucketPair>,
    pub queues: Vec<NamedQueue>,
    pub topic_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketPair {
    pub category: String,
    pub primary: String,
    pub replica: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedQueue {
    pub role: String,
    pub name: String,
    pub url: String,
    pub arn: String,
}

impl UpState {
    pub fn new(
        topology: &Topology,
        engine: &str,
        endpoint: &str,
        engine_endpoint: &str,
        engine_pid: Option<u32>,
        profile: &str,
        replication: &str,
    ) -> UpState {
        UpState {
            pid: std::process::id(),
            engine: engine.to_string(),
            endpoint: endpoint.to_string(),
            engine_endpoint: engine_endpoint.to_string(),
            engine_pid,
            profile: profile.to_string(),
            replication: replication.to_string(),
            primary_region: topology.primary_region.clone(),
            replica_region: topology.replica_region.clone(),
            suffix: topology.names.suffix.clone(),
            buckets: topology
                .buckets()
                .iter()
                .map(|b| BucketPair {
                    category: b.category.clone(),
                    primary: b.primary.clone(),
                    replica: b.replica.clone(),
                })
                .collect(),
            queues: topology
                .queues
                .all()
                .iter()
                .map(|(role, q)| NamedQueue {
                    role: role.to_string(),
                    name: q.name.clone(),
                    url: q.url.clone(),
                    arn: q.arn.clone(),
                })
                .collect(),
            topic_arn: topology.topic_arn.clone(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        }
    }

    pub fn queue(&self, role: &str) -> Option<&NamedQueue> {
        self.queues.iter().find(|q| q.role == role)
    }

    /// Everything a client needs, for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "backup system up on {} at {} (profile {}, replication {})\n",
            self.engine, self.endpoint, self.profile, self.replication
        ));
        s.push_str(&format!(
            "  {} is the fidelity layer: clients see S3 replication as AWS shows it\n  (raw engine, for debugging only: {})\n",
            self.endpoint, self.engine_endpoint
        ));
        s.push_str(&format!(
            "regions: primary {}, replica {}\n",
            self.primary_region, self.replica_region
        ));
        s.push_str("buckets:\n");
        for b in &self.buckets {
            s.push_str(&format!(
                "  {:<10} {}  ->  {}\n",
                b.category, b.primary, b.replica
            ));
        }
        s.push_str("queues:\n");
        for q in &self.queues {
            s.push_str(&format!("  {:<15} {}\n", q.role, q.url));
        }
        s.push_str(&format!("failure topic: {}\n", self.topic_arn));
        s.push_str("\nuse it from any AWS client (AWS CLI v1 reads AWS_DEFAULT_REGION and needs --endpoint-url):\n");
        s.push_str(&format!(
            "  export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_REGION={} AWS_DEFAULT_REGION={}\n",
            self.endpoint, self.access_key_id, self.secret_access_key, self.primary_region, self.primary_region
        ));
        let docs = self
            .buckets
            .first()
            .map(|b| b.primary.as_str())
            .unwrap_or("BUCKET");
        let validation = self
            .queue("validation")
            .map(|q| q.url.as_str())
            .unwrap_or("");
        s.push_str("\ntry:\n");
        s.push_str(&format!(
            "  aws --endpoint-url $AWS_ENDPOINT_URL s3 cp ./report.pdf s3://{docs}/report.pdf   # upload: replicated, validated\n"
        ));
        s.push_str(&format!(
            "  aws --endpoint-url $AWS_ENDPOINT_URL s3api head-object --bucket {docs} --key report.pdf   # ReplicationStatus PENDING, then COMPLETED\n"
        ));
        s.push_str(&format!(
            "  aws --endpoint-url $AWS_ENDPOINT_URL sqs send-message --queue-url {validation} --message-body 'not json'   # poison: DLQ, then one alert\n"
        ));
        s.push_str(&format!(
            "  harness --engine {} redrive --from validation-dlq --to failure   # the seed runbook's redrive\n",
            self.engine
        ));
        s.push_str(&format!(
            "  harness --engine {0} status    # queue depths, last decisions, alerts\n  harness --engine {0} alerts    # every alert in full\n",
            self.engine
        ));
        s
    }
}

/// `<cache>/run/up-<engine>/`.
pub fn dir(engine: &str) -> PathBuf {
    crate::paths::cache_dir()
        .join("run")
        .join(format!("up-{engine}"))
}

pub fn state_path(engine: &str) -> PathBuf {
    dir(engine).join("state.json")
}

/// The state of a live `harness up` for `engine`, if one runs.
pub fn read_live(engine: &str) -> Option<UpState> {
    let text = std::fs::read_to_string(state_path(engine)).ok()?;
    let st: UpState = serde_json::from_str(&text).ok()?;
    crate::engine::state::pid_alive(st.pid).then_some(st)
}

pub fn write(state: &UpState) -> std::io::Result<()> {
    let d = dir(&state.engine);
    std::fs::create_dir_all(&d)?;
    for f in ["decisions.jsonl", "alerts.jsonl"] {
        std::fs::write(d.join(f), "")?;
    }
    std::fs::write(state_path(&state.engine), serde_json::to_vec_pretty(state)?)
}

pub fn remove(engine: &str) {
    let _ = std::fs::remove_file(state_path(engine));
}

/// One decision as recorded for `harness status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecisionLine {
    pub outcome: String,
    pub object: String,
    pub attempt: u32,
    pub detail: String,
    pub evidence: String,
}

/// One alert as recorded for `harness alerts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertLine {
    pub subject: String,
    pub message: String,
}

/// Prints one readable line (or JSON line) per observation and appends decisions and alerts
/// to the files `status` and `alerts` read. Runs until the process ends.
pub async fn follow(observations: Observations, engine: String, json: bool) {
    let d = dir(&engine);
    let mut seen = 0usize;
    loop {
        let fresh = observations.since(seen).await;
        for o in &fresh {
            let (line, record): (Option<String>, Option<(&str, String)>) = match o {
                Observation::Decision { report, .. } => {
                    let object = report
                        .object
                        .as_ref()
                        .map(|x| format!("s3://{}/{}", x.bucket, x.key))
                        .unwrap_or_else(|| format!("message {}", report.message_id));
                    let evidence: Vec<String> = report
                        .evidence
                        .iter()
                        .map(|c| format!("{} {:?}", c.kind, c.verdict).to_lowercase())
                        .collect();
                    let d = DecisionLine {
                        outcome: report.outcome.to_string(),
                        object: object.clone(),
                        attempt: report.attempt,
                        detail: report.detail.clone(),
                        evidence: evidence.join(", "),
                    };
                    let text = if report.object.is_some() && report.attempt == 1 {
                        format!(
                            "event     {object} (uploaded; replica checked)\ndecision  {:<19} {object} attempt {}: {}",
                            d.outcome, d.attempt, d.detail
                        )
                    } else {
                        format!(
                            "decision  {:<19} {object} attempt {}: {}",
                            d.outcome, d.attempt, d.detail
                        )
                    };
                    (
                        Some(text),
                        serde_json::to_string(&d)
                            .ok()
                            .map(|j| ("decisions.jsonl", j)),
                    )
                }
                Observation::Notified {
                    queue,
                    receive_count,
                    report,
                } => {
                    let text = match &report.publish_error {
                        None if queue == "validation-dlq" => format!(
                            "dlq       message {} reached the validation DLQ after {} receives; alert published: {}",
                            report.message_id,
                            receive_count.map(|c| c.saturating_sub(1)).unwrap_or(0),
                            report.alert.subject
                        ),
                        None if report.ledger == failure_notifier::LedgerUse::Duplicate => format!(
                            "alert     duplicate suppressed (already published): {}",
                            report.alert.subject
                        ),
                        None => format!("alert     published: {}", report.alert.subject),
                        Some(e) => format!("alert     publish FAILED (will retry): {e}"),
                    };
                    (Some(text), None)
                }
                Observation::Alert {
                    subject, message, ..
                } => (
                    Some(format!("received  alert: {subject}")),
                    serde_json::to_string(&AlertLine {
                        subject: subject.clone(),
                        message: message.clone(),
                    })
                    .ok()
                    .map(|j| ("alerts.jsonl", j)),
                ),
                Observation::BatchError { queue, error } => {
                    (Some(format!("error     {queue}: {error}")), None)
                }
                Observation::TimedOut {
                    queue,
                    size,
                    timeout,
                } => (
                    Some(format!(
                        "timeout   {queue}: an invocation of {size} record(s) overran its {:.0}s timeout; the batch returns after its visibility timeout",
                        timeout.as_secs_f64()
                    )),
                    None,
                ),
                Observation::Throttled { queue, size } => (
                    Some(format!(
                        "throttle  {queue}: {size} record(s) received but not run (throttled)"
                    )),
                    None,
                ),
                Observation::Batch { .. } => (None, None),
            };
            if let Some(text) = line {
                if json {
                    let v = serde_json::json!({
                        "time": chrono::Utc::now().to_rfc3339(),
                        "event": text.split_whitespace().next().unwrap_or(""),
                        "line": text,
                    });
                    println!("{v}");
                } else {
                    for l in text.lines() {
                        println!("{} {l}", chrono::Utc::now().format("%H:%M:%S"));
                    }
                }
            }
            if let Some((file, json_line)) = record {
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(d.join(file))
                {
                    let _ = writeln!(f, "{json_line}");
                }
            }
        }
        seen += fresh.len();
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn read_lines<T: for<'de> Deserialize<'de>>(engine: &str, file: &str) -> Vec<T> {
    std::fs::read_to_string(dir(engine).join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
