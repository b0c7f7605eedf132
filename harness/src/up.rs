//! `harness up`: the whole backup system running locally until Ctrl-C, for any AWS client.
//!
//! The running `up` process records where everything is in a state file
//! (`<cache>/run/up-<engine>.json`) and appends decisions and alerts to JSON-lines files
//! beside it, so `harness status`, `harness alerts` and `harness redrive` work from another
//! terminal.
//!
//! One `up` per engine: the process holds an exclusive `flock` on `up-<engine>/lock` for
//! its whole life, taken before it provisions anything, so two `up`s started together
//! cannot both pass, and a state file whose writer is gone (or whose pid was reused) is
//! recognisably stale: nobody holds the lock. State is written to a private temporary file
//! and renamed into place (readers never see half of it); files are created 0600.
//! The JSON-lines logs rotate at [`LOG_ROTATE_BYTES`] (one previous file kept), so a
//! long-running `up` fed poison messages stays bounded on disk as it does in memory.
//!
//! Floor 7: may import floors 0-6 (up to scenario play).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::observe::{Observation, Observations};
use crate::paths::write_private;
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

pub fn lock_path(engine: &str) -> PathBuf {
    dir(engine).join("lock")
}

/// A JSON-lines log is rotated (to `<name>.1`) when it reaches this size.
pub const LOG_ROTATE_BYTES: u64 = 16 * 1024 * 1024;

/// Proof that this process is the one `harness up` for an engine: the lock is held until
/// it is dropped (or the process dies, when the kernel releases it).
#[derive(Debug)]
pub struct Claim {
    _lock: std::fs::File,
}

/// Another `harness up` holds the engine's lock.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("`harness up` already runs for {engine} (it holds {lock})")]
    Held { engine: String, lock: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Options for the files `up` creates: private (0600), never through a symlink.
fn private_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

fn open_lock(engine: &str) -> Result<std::fs::File, ClaimError> {
    let d = dir(engine);
    let path = lock_path(engine);
    let io = |source| ClaimError::Io {
        path: path.clone(),
        source,
    };
    crate::paths::run_dir().map_err(io)?;
    crate::paths::private_dir(&d).map_err(io)?;
    private_options()
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(io)
}

/// Claims `engine` for this `harness up`, or says which process-wide lock is held.
pub fn claim(engine: &str) -> Result<Claim, ClaimError> {
    let f = open_lock(engine)?;
    match f.try_lock() {
        Ok(()) => Ok(Claim { _lock: f }),
        Err(std::fs::TryLockError::WouldBlock) => Err(ClaimError::Held {
            engine: engine.to_string(),
            lock: lock_path(engine),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(ClaimError::Io {
            path: lock_path(engine),
            source,
        }),
    }
}

/// The state of a live `harness up` for `engine`, if one runs: the state file, while some
/// process holds the lock. A state file nobody's lock backs is stale (its `up` was killed;
/// its pid may since belong to anything) and is ignored.
pub fn read_live(engine: &str) -> Option<UpState> {
    let text = std::fs::read_to_string(state_path(engine)).ok()?;
    let st: UpState = serde_json::from_str(&text).ok()?;
    let f = open_lock(engine).ok()?;
    match f.try_lock() {
        // We could take it: nobody holds it (dropping `f` releases it again).
        Ok(()) => None,
        Err(_) => Some(st),
    }
}

pub fn write(state: &UpState, _claim: &Claim) -> std::io::Result<()> {
    let d = dir(&state.engine);
    crate::paths::run_dir()?;
    crate::paths::private_dir(&d)?;
    for f in ["decisions.jsonl", "alerts.jsonl"] {
        let _ = std::fs::remove_file(d.join(format!("{f}.1")));
        write_private(&d.join(f), b"")?;
    }
    write_private(
        &state_path(&state.engine),
        &serde_json::to_vec_pretty(state)?,
    )
}

/// Appends one line to a JSON-lines log, rotating it first when it is full.
fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) >= LOG_ROTATE_BYTES {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    let mut f = private_options().append(true).open(path)?;
    writeln!(f, "{line}")
}

pub fn remove(engine: &str) {
    let _ = std::fs::remove_file(state_path(engine));
    // The fidelity layer's history: nothing in it outlives the run.
    for f in crate::system::HISTORY_FILES {
        let _ = std::fs::remove_file(dir(engine).join(f));
    }
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

/// What the console shows of one run event: its text (one or more lines) and the record
/// appended to a log file (`decisions.jsonl`, `alerts.jsonl`) that `status` and `alerts` read.
#[derive(Debug, Default, PartialEq)]
pub struct Rendered {
    pub text: Option<String>,
    pub record: Option<(&'static str, String)>,
}

/// The console renderer of the typed run events: pure, so [`follow`] only prints and
/// appends what it returns.
pub fn render_event(o: &Observation) -> Rendered {
    let (text, record): (Option<String>, Option<(&'static str, String)>) = match o {
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
        // Batch sizes, and the harness's own records of uploads, receives, replica
        // arrivals and depth samples: the console shows what the functions decided.
        Observation::Batch { .. }
        | Observation::Uploaded { .. }
        | Observation::Received { .. }
        | Observation::Replica { .. }
        | Observation::Depth { .. } => (None, None),
    };
    Rendered { text, record }
}

/// The console lines of a rendered text at `now`: each line after the time, or one JSON
/// object (`time`, `event`: the first word, `line`) with `--json`.
pub fn console_lines(text: &str, json: bool, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    if json {
        let v = serde_json::json!({
            "time": now.to_rfc3339(),
            "event": text.split_whitespace().next().unwrap_or(""),
            "line": text,
        });
        vec![v.to_string()]
    } else {
        text.lines()
            .map(|l| format!("{} {l}", now.format("%H:%M:%S")))
            .collect()
    }
}

/// Prints one readable line (or JSON line) per observation and appends decisions and alerts
/// to the files `status` and `alerts` read. Runs until the process ends.
pub async fn follow(observations: Observations, engine: String, json: bool) {
    let d = dir(&engine);
    let mut seen = 0usize;
    loop {
        let (start, fresh) = observations.since(seen).await;
        for o in &fresh {
            let Rendered { text, record } = render_event(o);
            if let Some(text) = text {
                for line in console_lines(&text, json, chrono::Utc::now()) {
                    println!("{line}");
                }
            }
            if let Some((file, json_line)) = record {
                let _ = append_line(&d.join(file), &json_line);
            }
        }
        seen = start + fresh.len();
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lines of a JSON-lines log, the rotated previous file first.
pub fn read_lines<T: for<'de> Deserialize<'de>>(engine: &str, file: &str) -> Vec<T> {
    let d = dir(engine);
    [d.join(format!("{file}.1")), d.join(file)]
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<T>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 26: one `up` per engine, however they race; a state file with a live but
    /// unrelated pid and no lock holder is stale.
    #[test]
    fn one_up_per_engine_and_stale_state_is_recognised() {
        let engine = format!("unit-{}", std::process::id());
        let first = claim(&engine).expect("the first claim");
        let second = claim(&engine).unwrap_err();
        assert!(
            matches!(&second, ClaimError::Held { lock, .. } if lock == &lock_path(&engine)),
            "{second}"
        );
        std::fs::write(
            state_path(&engine),
            serde_json::json!({
                "pid": std::process::id(), "engine": engine, "endpoint": "e",
                "engine_endpoint": "e", "engine_pid": null, "profile": "fast",
                "replication": "native", "primary_region": "a", "replica_region": "b",
                "suffix": "s", "buckets": [], "queues": [], "topic_arn": "t",
                "access_key_id": "k", "secret_access_key": "s"
            })
            .to_string(),
        )
        .unwrap();
        assert!(read_live(&engine).is_some(), "held: live");
        drop(first);
        // The pid in the file is this (live) process, but nobody holds the lock: stale.
        assert!(read_live(&engine).is_none(), "not held: stale");
        claim(&engine).expect("claimable again");
        let _ = std::fs::remove_dir_all(dir(&engine));
    }

    #[test]
    fn state_files_are_private_and_replace_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let link = d.path().join("state.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_private(&link, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let m = std::fs::symlink_metadata(&link).unwrap();
        assert!(m.is_file());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }

    /// The console renderer over synthetic run events: a first decision also announces the
    /// event and is logged for `status`; an alert is logged for `alerts`; the harness's own
    /// records show nothing.
    #[test]
    fn the_console_renders_typed_run_events() {
        use checksum_validator::failure_record::ObjectRef;
        use checksum_validator::report::Action;
        use checksum_validator::{Outcome, RecordReport};
        let decision = |attempt| Observation::Decision {
            queue: "validation".into(),
            report: RecordReport {
                message_id: "m-1".into(),
                object: Some(ObjectRef {
                    bucket: "docs-primary".into(),
                    key: "a.txt".into(),
                    version_id: Some("v1".into()),
                    category: None,
                }),
                outcome: Outcome::Validated,
                detail: "crc32 match".into(),
                evidence: Vec::new(),
                attempt,
                action: Action::Done,
                version_source: None,
                replicas: Vec::new(),
                duration_ms: 0,
            },
        };
        let first = render_event(&decision(1));
        assert_eq!(
            first.text.as_deref(),
            Some(
                "event     s3://docs-primary/a.txt (uploaded; replica checked)\n\
                 decision  validated           s3://docs-primary/a.txt attempt 1: crc32 match"
            )
        );
        let (file, line) = first.record.expect("a decision is logged");
        assert_eq!(file, "decisions.jsonl");
        let logged: DecisionLine = serde_json::from_str(&line).unwrap();
        assert_eq!((logged.outcome.as_str(), logged.attempt), ("validated", 1));
        assert_eq!(
            render_event(&decision(2)).text.as_deref(),
            Some("decision  validated           s3://docs-primary/a.txt attempt 2: crc32 match")
        );
        let alert = render_event(&Observation::Alert {
            subject: "mismatch".into(),
            message: "body".into(),
            attributes: Default::default(),
        });
        assert_eq!(alert.text.as_deref(), Some("received  alert: mismatch"));
        assert_eq!(alert.record.map(|(f, _)| f), Some("alerts.jsonl"));
        assert_eq!(
            render_event(&Observation::Throttled {
                queue: "validation".into(),
                size: 3
            })
            .text
            .as_deref(),
            Some("throttle  validation: 3 record(s) received but not run (throttled)")
        );
        let quiet = Observation::Uploaded {
            bucket: "b".into(),
            key: "k".into(),
            version_id: "v".into(),
        };
        assert_eq!(render_event(&quiet), Rendered::default());
    }

    #[test]
    fn console_lines_carry_the_time_or_are_json() {
        use chrono::TimeZone;
        let now = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            console_lines("event     x\ndecision  y", false, now),
            ["03:04:05 event     x", "03:04:05 decision  y"]
        );
        let json = console_lines("alert     published: s", true, now);
        let v: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
        assert_eq!(v["event"], "alert");
        assert_eq!(v["line"], "alert     published: s");
        assert_eq!(v["time"], "2026-01-02T03:04:05+00:00");
    }

    #[test]
    fn logs_rotate_when_full() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("alerts.jsonl");
        std::fs::write(&p, vec![b'x'; LOG_ROTATE_BYTES as usize]).unwrap();
        append_line(&p, "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}\n");
        assert_eq!(
            std::fs::metadata(d.path().join("alerts.jsonl.1"))
                .unwrap()
                .len(),
            LOG_ROTATE_BYTES
        );
    }
}
