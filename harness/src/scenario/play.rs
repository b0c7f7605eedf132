//! Playing a scenario's steps on the running system: uploads, sends, deletes, duplicate
//! events, replication and trigger controls, faults and outages, the agent's steps,
//! redrives and waits; and [`settle`], the wait until the system is quiet. What the runner
//! learns meanwhile about each uploaded version (for the invariants) is [`Truths`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption, StorageClass};

use super::expect::{alert_count, decided};
use super::file::Scenario;
use super::invariants::{Content, Ineligibility, Injected, UploadTruth};
use super::steps::{Delete, ReplicationAction, Step, TriggerAction, Upload, Wait, WaitFor};
use super::transcript::depth;
use super::ScenarioError;
use crate::agent::AgentSession;
use crate::engine::Engine;
use crate::errors::sdk;
use crate::fidelity::faults::{EffectKind, FaultSpec, Service};
use crate::fidelity::replicator::Fault;
use crate::observe::{Observation, Observations};
use crate::payload::generated_bytes;
use crate::s3util::{put_multipart, PutOptions};
use crate::system::RunningSystem;
use crate::topology::TopologySpec;

pub(super) async fn play(
    system: &RunningSystem,
    engine: &Engine,
    scenario: &Scenario,
    agent: &mut AgentSession,
    truths: &mut Truths,
) -> Result<(), ScenarioError> {
    for (index, located) in scenario.steps.iter().enumerate() {
        let fail = |why: String| ScenarioError::Step {
            file: scenario.path.clone(),
            line: located.line,
            index: index + 1,
            kind: located.step.kind().to_string(),
            why,
        };
        match &located.step {
            Step::Upload(u) => match (upload(system, u).await, &u.refused_with) {
                (Ok((bucket, version, content)), None) => {
                    truths.uploaded(u, bucket, version, content);
                    discover_now(system).await.map_err(fail)?;
                }
                (Ok(_), Some(code)) => {
                    return Err(fail(format!(
                        "S3 stored the upload; the scenario expects it refused with {code}"
                    )))
                }
                (Err(e), Some(code)) if e.code.as_deref() == Some(code.as_str()) => {
                    truths
                        .refused
                        .push(format!("{}/{}: {code}", u.category, u.key));
                }
                (Err(e), Some(code)) => {
                    return Err(fail(format!(
                        "expected S3 to refuse the upload with {code}, it failed otherwise: {}",
                        e.message
                    )))
                }
                (Err(e), None) => return Err(fail(e.message)),
            },
            Step::Send(s) => {
                let q = system
                    .topology
                    .queues
                    .by_role(s.queue.as_str())
                    .ok_or_else(|| fail(format!("no queue {}", s.queue.as_str())))?;
                let run = |t: &str| t.replace("{run}", &system.topology.names.suffix);
                let mut send = system
                    .clients
                    .sqs
                    .send_message()
                    .queue_url(&q.url)
                    .message_body(run(&s.body));
                for (k, v) in &s.attributes {
                    let v = run(v);
                    send = send.message_attributes(
                        k,
                        aws_sdk_sqs::types::MessageAttributeValue::builder()
                            .data_type("String")
                            .string_value(&v)
                            .build()
                            .map_err(|e| fail(e.to_string()))?,
                    );
                }
                send.send().await.map_err(|e| fail(sdk(e)))?;
            }
            Step::Replication(r) => {
                let rep = system
                    .replicator
                    .as_ref()
                    .ok_or_else(|| fail("replication is native in this run".into()))?;
                truths.replication(r);
                match r.action {
                    ReplicationAction::Pause => rep.pause().await,
                    ReplicationAction::Resume => {
                        rep.resume().await;
                        rep.pass().await.map_err(fail)?;
                    }
                    ReplicationAction::Delay => {
                        rep.delay(
                            r.key.as_deref().unwrap_or("*"),
                            Duration::from_secs_f64(r.seconds.unwrap_or(0.0).max(0.0)),
                        )
                        .await
                    }
                    ReplicationAction::Fault => {
                        if let Some(f) = r.fault {
                            rep.fault(r.key.as_deref().unwrap_or("*"), f, r.destination)
                                .await
                        }
                    }
                }
            }
            Step::Wait(w) => wait(system, w).await.map_err(fail)?,
            Step::Delete(d) => {
                delete(system, d).await.map_err(fail)?;
                truths.deleted(d);
                discover_now(system).await.map_err(fail)?;
            }
            Step::SendEvent(e) => send_event(system, engine, &e.object, e.encoding)
                .await
                .map_err(fail)?,
            Step::Trigger(t) => {
                let faults = system.faults(t.function);
                let n = t.count.unwrap_or(1);
                match t.action {
                    TriggerAction::Pause => system.set_paused(t.function, true).await,
                    TriggerAction::Resume => system.set_paused(t.function, false).await,
                    TriggerAction::Overrun | TriggerAction::Throttle
                        if system.deployment.is_some() =>
                    {
                        return Err(fail(
                            crate::deployed::DeployError::StepUnsupported {
                                what: "trigger overrun/throttle".into(),
                                why: "the engine's Lambda service runs the invocations; the harness cannot stop or throttle one",
                            }
                            .to_string(),
                        ));
                    }
                    TriggerAction::Overrun => {
                        faults
                            .overrun
                            .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                    }
                    TriggerAction::Throttle => {
                        faults
                            .throttle
                            .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
            Step::Outage(o) => match &system.proxy {
                Some(p) => {
                    p.fault(FaultSpec {
                        service: o.service,
                        operation: None,
                        key_prefix: None,
                        effect: EffectKind::Unavailable,
                        code: None,
                        status: None,
                        latency_ms: None,
                        count: Some(o.failures),
                        seconds: None,
                        rate: None,
                    })
                    .await
                }
                None => return Err(fail("outages need the fidelity layer".into())),
            },
            Step::Fault(f) => match &system.proxy {
                Some(p) => p.fault(f.clone()).await,
                None => return Err(fail("faults need the fidelity layer".into())),
            },
            Step::Tree(t) => agent.generate(t).map_err(fail)?,
            Step::Backup(b) => {
                agent.backup(located.line, b).await.map_err(fail)?;
                discover_now(system).await.map_err(fail)?;
            }
            Step::Restore(r) => agent.restore(located.line, r).await.map_err(fail)?,
            Step::Cost(c) => agent.cost(located.line, c).await.map_err(fail)?,
            Step::Redrive(r) => {
                let q = &system.topology.queues;
                let (from, to) = (
                    q.by_role(r.from.as_str())
                        .ok_or_else(|| fail(format!("no queue {}", r.from.as_str())))?,
                    q.by_role(r.to.as_str())
                        .ok_or_else(|| fail(format!("no queue {}", r.to.as_str())))?,
                );
                crate::redrive::redrive(&system.clients.sqs, &engine.capabilities(), from, to)
                    .await
                    .map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Where the harness replicator stands in, it learns of new versions right away (their
/// status is PENDING from the first read, and their replication clock starts now): a
/// scenario's timing never depends on when the background pass happens to run.
async fn discover_now(system: &RunningSystem) -> Result<(), String> {
    match &system.replicator {
        Some(r) => r.discover().await,
        None => Ok(()),
    }
}

/// Why an upload stored no version.
struct UploadFailed {
    /// S3's error code, when S3 refused the request.
    code: Option<String>,
    message: String,
}

impl From<String> for UploadFailed {
    fn from(message: String) -> UploadFailed {
        UploadFailed {
            code: None,
            message,
        }
    }
}

/// Uploads a version; answers its bucket, version id and content.
async fn upload(
    system: &RunningSystem,
    u: &Upload,
) -> Result<(String, Option<String>, Content), UploadFailed> {
    let bucket = &system
        .topology
        .category(&u.category)
        .ok_or_else(|| UploadFailed::from(format!("unknown category {}", u.category)))?
        .primary;
    let bytes = if let Some(t) = &u.text {
        t.clone().into_bytes()
    } else if let Some(f) = &u.fixture {
        let p = crate::paths::repo_root().join("fixtures").join(f);
        std::fs::read(&p).map_err(|e| UploadFailed::from(format!("{}: {e}", p.display())))?
    } else {
        generated_bytes(&u.key, u.size.unwrap_or(0))
    };
    let content = Content::of(&bytes, u.part_size);
    let plain;
    let s3 = if u.without_checksum {
        plain = crate::aws::without_checksums(&system.clients.s3);
        &plain
    } else {
        &system.clients.s3
    };
    let storage_class = u.storage_class.map(|c| StorageClass::from(c.as_str()));
    let kms_key = u.sse_kms.then(|| system.topology.s3_key_arn.clone());
    let version = match u.part_size {
        None => {
            let mut put = s3
                .put_object()
                .bucket(bucket)
                .key(&u.key)
                .set_storage_class(storage_class)
                .body(ByteStream::from(bytes));
            if let Some(k) = kms_key {
                put = put
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(k);
            }
            let out = put.send().await.map_err(|e| UploadFailed {
                code: e.code().map(str::to_string),
                message: sdk(e),
            })?;
            record_upload(system, bucket, &u.key, out.version_id()).await;
            out.version_id().map(str::to_string)
        }
        Some(part) => {
            let id = put_multipart(
                s3,
                bucket,
                &u.key,
                &bytes,
                part as usize,
                (!u.without_checksum).then_some(ChecksumAlgorithm::Crc32),
                &PutOptions {
                    kms_key,
                    storage_class,
                    ..PutOptions::default()
                },
            )
            .await?;
            record_upload(system, bucket, &u.key, id.as_deref()).await;
            id
        }
    };
    Ok((bucket.clone(), version, content))
}

/// What the runner knows of a run's versions for the invariants: what it uploaded and
/// which replication faults, delays and pauses were in force for each.
pub(super) struct Truths {
    pub(super) uploads: Vec<UploadTruth>,
    /// `category/key: code` of each upload S3 refused as the scenario expected.
    pub(super) refused: Vec<String>,
    sse_kms: bool,
    prefix: String,
    lag_budget: f64,
    faults: BTreeMap<String, Fault>,
    delays: BTreeMap<String, f64>,
    paused: bool,
}

impl Truths {
    pub(super) fn new(spec: &TopologySpec, lag_budget: f64) -> Truths {
        Truths {
            uploads: Vec::new(),
            refused: Vec::new(),
            sse_kms: spec.replication.sse_kms,
            prefix: spec.replication.prefix.clone(),
            lag_budget,
            faults: BTreeMap::new(),
            delays: BTreeMap::new(),
            paused: false,
        }
    }

    fn replication(&mut self, r: &super::steps::ReplicationControl) {
        let key = r.key.clone().unwrap_or_else(|| "*".into());
        match r.action {
            ReplicationAction::Pause => self.paused = true,
            ReplicationAction::Resume => self.paused = false,
            ReplicationAction::Delay => {
                self.delays.insert(key, r.seconds.unwrap_or(0.0));
            }
            ReplicationAction::Fault => {
                if let Some(f) = r.fault {
                    self.faults.insert(key, f);
                }
            }
        }
    }

    fn uploaded(&mut self, u: &Upload, bucket: String, version: Option<String>, content: Content) {
        let Some(version) = version else { return };
        let fault = self.faults.get(&u.key).or_else(|| self.faults.get("*"));
        let delay = self.delays.get(&u.key).or_else(|| self.delays.get("*"));
        let injected = if u.storage_class.is_some_and(|c| c.is_cold()) {
            Injected::Ineligible(Ineligibility::ColdStorage)
        } else if u.sse_kms && !self.sse_kms {
            Injected::Ineligible(Ineligibility::SseKmsNotOptedIn)
        } else if !u.key.starts_with(&self.prefix) {
            Injected::Ineligible(Ineligibility::OutsidePrefix)
        } else {
            match fault {
                None => Injected::Nothing,
                Some(Fault::Never) => Injected::Never,
                Some(Fault::Failed) => Injected::Failed,
                // Flipping the first byte of nothing changes nothing.
                Some(Fault::Corrupt) if content.size == 0 => Injected::Nothing,
                Some(Fault::Corrupt) => Injected::Corrupt,
                Some(Fault::Relayout) => Injected::Relayout,
                Some(Fault::RelayoutCorrupt) if content.size == 0 => Injected::Relayout,
                Some(Fault::RelayoutCorrupt) => Injected::RelayoutCorrupt,
            }
        };
        let late = self.paused || delay.is_some_and(|d| *d >= self.lag_budget / 2.0);
        let n = 1 + self
            .uploads
            .iter()
            .filter(|t| t.bucket == bucket && t.key == u.key)
            .count();
        self.uploads.push(UploadTruth {
            label: format!("{}/{}#{n}", u.category, u.key),
            bucket,
            key: u.key.clone(),
            version,
            content,
            injected,
            late,
            api_errors: false,
            deleted: false,
        });
    }

    fn deleted(&mut self, d: &Delete) {
        if !d.permanent {
            return;
        }
        if let Some(t) =
            self.uploads.iter_mut().rev().find(|t| {
                !t.deleted && t.label.rsplit_once('#').is_some_and(|(o, _)| o == d.object)
            })
        {
            t.deleted = true;
        }
    }

    /// Marks the versions an S3 error fault of the scenario could hit.
    pub(super) fn finish(&mut self, scenario: &Scenario) {
        for s in &scenario.steps {
            if let Step::Fault(f) = &s.step {
                if f.service == Service::S3 && f.effect == EffectKind::Error {
                    let prefix = f.key_prefix.as_deref().unwrap_or("");
                    for t in self
                        .uploads
                        .iter_mut()
                        .filter(|t| t.key.starts_with(prefix))
                    {
                        t.api_errors = true;
                    }
                }
            }
        }
    }
}

async fn record_upload(system: &RunningSystem, bucket: &str, key: &str, version: Option<&str>) {
    if let Some(v) = version {
        system
            .uploads
            .lock()
            .await
            .push((bucket.to_string(), key.to_string(), v.to_string()));
        system
            .observations
            .push(Observation::Uploaded {
                bucket: bucket.to_string(),
                key: key.to_string(),
                version_id: v.to_string(),
            })
            .await;
    }
}

async fn delete(system: &RunningSystem, d: &Delete) -> Result<(), String> {
    let (bucket, key) =
        object_location(system, &d.object).ok_or_else(|| format!("unknown object {}", d.object))?;
    let s3 = &system.clients.s3;
    let mut req = s3.delete_object().bucket(bucket).key(key);
    if d.permanent {
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(sdk)?;
        req = req.set_version_id(head.version_id().map(str::to_string));
    }
    req.send().await.map_err(sdk)?;
    Ok(())
}

/// Sends the `Object Created` event this engine would deliver for the object's current
/// version (a duplicate delivery).
async fn send_event(
    system: &RunningSystem,
    engine: &Engine,
    object: &str,
    encoding: Option<crate::engine::gaps::KeyEncoding>,
) -> Result<(), String> {
    let (bucket, key) =
        object_location(system, object).ok_or_else(|| format!("unknown object {object}"))?;
    let body = crate::engine::gaps::object_created_event(
        &system.clients.s3,
        &engine.capabilities(),
        &system.topology.account,
        &system.topology.primary_region,
        bucket,
        key,
        encoding,
    )
    .await?;
    system
        .clients
        .sqs
        .send_message()
        .queue_url(&system.topology.queues.validation.url)
        .message_body(body)
        .send()
        .await
        .map_err(sdk)?;
    Ok(())
}

/// Splits `category/key` into the primary bucket and the key.
fn object_location<'a>(system: &'a RunningSystem, object: &'a str) -> Option<(&'a str, &'a str)> {
    let (cat, key) = object.split_once('/')?;
    Some((system.topology.category(cat)?.primary.as_str(), key))
}

async fn wait(system: &RunningSystem, w: &Wait) -> Result<(), String> {
    let timeout = Duration::from_secs_f64(w.timeout_seconds.max(0.0));
    match w.what {
        WaitFor::Outcome => {
            let object = w.object.as_deref().unwrap_or_default();
            let outcome = w.outcome.map(|o| o.as_str()).unwrap_or_default();
            let (bucket, key) = object_location(system, object)
                .ok_or_else(|| format!("unknown object {object}"))?;
            if system
                .observations
                .wait_until(timeout, |obs| decided(obs, bucket, key, outcome))
                .await
            {
                Ok(())
            } else {
                Err(format!(
                    "no `{outcome}` decision for {object} within {}s; decisions so far: {}",
                    timeout.as_secs_f64(),
                    summary(&system.observations).await
                ))
            }
        }
        WaitFor::Alerts => {
            let want = w.count.unwrap_or(1);
            if system
                .observations
                .wait_until(timeout, |obs| alert_count(obs) >= want)
                .await
            {
                Ok(())
            } else {
                Err(format!(
                    "{} alert(s) within {}s, wanted {want}",
                    alert_count(&system.observations.snapshot().await),
                    timeout.as_secs_f64()
                ))
            }
        }
        WaitFor::Idle => settle(system, timeout).await,
        WaitFor::Replicated => {
            let Some(r) = &system.replicator else {
                return Ok(());
            };
            let deadline = Instant::now() + timeout;
            loop {
                r.pass().await?;
                let held = r.held().await;
                if held == 0 {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "the replicator still holds {held} version(s) after {}s",
                        timeout.as_secs_f64()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        WaitFor::Queue => {
            let role = w.queue.map_or("validation", |q| q.as_str());
            let want = w.count.unwrap_or(1) as u64;
            let q = system
                .topology
                .queues
                .by_role(role)
                .ok_or_else(|| format!("no queue {role}"))?;
            let deadline = Instant::now() + timeout;
            loop {
                let d = depth(&system.clients.sqs, &q.url).await?;
                if d.visible >= want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{role} holds {} visible message(s) after {}s, wanted {want}",
                        d.visible,
                        timeout.as_secs_f64()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn summary(obs: &Observations) -> String {
    let items: Vec<String> = obs
        .snapshot()
        .await
        .iter()
        .filter_map(|o| match o {
            Observation::Decision { report, .. } => Some(format!(
                "{}#{}={}",
                report
                    .object
                    .as_ref()
                    .map(|x| x.key.as_str())
                    .unwrap_or("(message)"),
                report.attempt,
                report.outcome
            )),
            _ => None,
        })
        .collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Waits until every queue of the system is empty (nothing visible, in flight or delayed;
/// the failure DLQ may hold what could not be delivered), the replicator holds nothing,
/// and nothing new was observed for 1.5 s.
pub async fn settle(system: &RunningSystem, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let quiet = Duration::from_millis(1500);
    loop {
        let mut busy = Vec::new();
        for (role, q) in system.topology.queues.all() {
            if role == "failure-dlq" {
                continue;
            }
            let d = depth(&system.clients.sqs, &q.url).await?;
            if d.total() > 0 {
                busy.push(format!(
                    "{role} {}/{}/{}",
                    d.visible, d.in_flight, d.delayed
                ));
            }
        }
        if let Some(r) = &system.replicator {
            let held = r.held().await;
            if held > 0 {
                busy.push(format!("replicator holds {held} version(s)"));
            }
        }
        let recent = system
            .observations
            .quiet_for()
            .await
            .is_some_and(|q| q < quiet);
        if busy.is_empty() && !recent {
            return Ok(());
        }
        let last = if busy.is_empty() {
            "waiting for activity to stop".into()
        } else {
            busy.join(", ")
        };
        if Instant::now() > deadline {
            return Err(format!("still busy after {}s: {last}", timeout.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn truths(sse_kms: bool, prefix: &str) -> Truths {
        Truths {
            uploads: Vec::new(),
            refused: Vec::new(),
            sse_kms,
            prefix: prefix.into(),
            lag_budget: 60.0,
            faults: BTreeMap::new(),
            delays: BTreeMap::new(),
            paused: false,
        }
    }

    fn step(text: &str) -> Upload {
        toml::from_str(text).expect("an upload")
    }

    /// The runner's ground truth comes from the step and the faults in force, never from
    /// what the system decided.
    #[rstest]
    #[case::plain("", None, true, "", 5, Injected::Nothing)]
    #[case::corrupt("", Some(Fault::Corrupt), true, "", 5, Injected::Corrupt)]
    #[case::corrupting_nothing_changes_nothing(
        "",
        Some(Fault::Corrupt),
        true,
        "",
        0,
        Injected::Nothing
    )]
    #[case::failed("", Some(Fault::Failed), true, "", 5, Injected::Failed)]
    #[case::glacier(
        "storage_class = \"GLACIER\"",
        Some(Fault::Corrupt),
        true,
        "",
        5,
        Injected::Ineligible(Ineligibility::ColdStorage)
    )]
    #[case::kms_without_opt_in(
        "sse_kms = true",
        None,
        false,
        "",
        5,
        Injected::Ineligible(Ineligibility::SseKmsNotOptedIn)
    )]
    #[case::kms_with_opt_in("sse_kms = true", None, true, "", 5, Injected::Nothing)]
    #[case::outside_prefix(
        "",
        None,
        true,
        "reports/",
        5,
        Injected::Ineligible(Ineligibility::OutsidePrefix)
    )]
    fn ground_truth_of_an_upload(
        #[case] extra: &str,
        #[case] fault: Option<Fault>,
        #[case] sse_kms: bool,
        #[case] prefix: &str,
        #[case] size: usize,
        #[case] want: Injected,
    ) {
        let mut t = truths(sse_kms, prefix);
        if let Some(f) = fault {
            t.faults.insert("*".into(), f);
        }
        let u = step(&format!(
            "category = \"documents\"\nkey = \"a.txt\"\n{extra}"
        ));
        t.uploaded(
            &u,
            "b".into(),
            Some("v1".into()),
            Content::of(&vec![7; size], None),
        );
        assert_eq!(t.uploads[0].injected, want);
        assert_eq!(t.uploads[0].label, "documents/a.txt#1");
    }

    #[test]
    fn delays_past_half_the_budget_and_pauses_may_be_late_and_deletes_mark_the_current() {
        let mut t = truths(true, "");
        t.delays.insert("slow.txt".into(), 40.0);
        let up = |k: &str| step(&format!("category = \"documents\"\nkey = \"{k}\""));
        t.uploaded(
            &up("slow.txt"),
            "b".into(),
            Some("v1".into()),
            Content::default(),
        );
        t.uploaded(
            &up("fast.txt"),
            "b".into(),
            Some("v2".into()),
            Content::default(),
        );
        t.paused = true;
        t.uploaded(
            &up("fast.txt"),
            "b".into(),
            Some("v3".into()),
            Content::default(),
        );
        assert_eq!(
            t.uploads.iter().map(|u| u.late).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert_eq!(t.uploads[2].label, "documents/fast.txt#2");
        let delete = |permanent| Delete {
            object: "documents/fast.txt".into(),
            permanent,
        };
        t.deleted(&delete(false));
        assert!(
            t.uploads.iter().all(|u| !u.deleted),
            "a marker deletes no version"
        );
        t.deleted(&delete(true));
        t.deleted(&delete(true));
        assert_eq!(
            t.uploads.iter().map(|u| u.deleted).collect::<Vec<_>>(),
            [false, true, true]
        );
    }
}
