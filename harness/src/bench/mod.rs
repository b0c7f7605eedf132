//! `harness bench validator`: how fast the real validator drains the validation queue under
//! the event source mapping, through the fidelity layer (as every scenario runs it), against
//! the engine's own bound (a plain SDK loop making the same S3 and SQS calls at the
//! concurrency that gets the most out of the engine), and what the layer itself costs (the
//! same plain loop through the layer and direct to the engine).
//!
//! Every side gets identical work: N objects are uploaded and replicated first, then the
//! same N `Object Created` bodies (as the engine would deliver them) are sent to the
//! validation queue for each round. Figures are printed, never asserted.
//!
//! Floor 7: may import floors 0-6 (up to scenario play).

pub mod layer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use checksum_validator::{Validator, ValidatorConfig};
use futures::StreamExt;

use crate::aws::Clients;
use crate::engine::Engine;
use crate::observe::Observation;
use crate::system::{RunningSystem, SystemOptions};
use crate::topology::provision::provision_for_engine;
use crate::topology::replication;
use crate::topology::{new_suffix, teardown::teardown, Topology, TopologySpec};

/// One measured round.
#[derive(Debug, Clone)]
pub struct Round {
    pub concurrency: usize,
    pub objects: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Round {
    pub fn rate(&self) -> f64 {
        self.objects as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// All figures of a benchmark run.
#[derive(Debug, Clone)]
pub struct ValidatorBench {
    pub engine: String,
    pub objects: usize,
    pub validator: Vec<Round>,
    /// The plain loop through the fidelity layer (the bound the validator runs against).
    pub baseline: Vec<Round>,
    /// The plain loop direct to the engine (what the layer costs).
    pub direct: Vec<Round>,
    pub init: Duration,
    /// Whether a fault that matches nothing was installed in every fidelity layer, so each
    /// request went through the fault machinery's inspection.
    pub armed_fault: bool,
}

impl ValidatorBench {
    pub fn best(rounds: &[Round]) -> Option<&Round> {
        rounds.iter().max_by(|a, b| a.rate().total_cmp(&b.rate()))
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "bench validator on {}: {} objects of 1 KiB, batch size 5, {}\n",
            self.engine,
            self.objects,
            if self.armed_fault {
                "fault machinery armed (a fault matching nothing: every request inspected)"
            } else {
                "no fault installed"
            }
        );
        let line = |r: &Round, what: &str| {
            format!(
                "  {what} {:>2}: {:>7.1} objects/s  p50 {:>6.1} ms  p99 {:>6.1} ms  ({:.2}s)\n",
                r.concurrency,
                r.rate(),
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.elapsed.as_secs_f64()
            )
        };
        s.push_str("validator under the event source mapping:\n");
        for r in &self.validator {
            s.push_str(&line(r, "pollers"));
        }
        s.push_str(
            "plain SDK loop through the fidelity layer, same S3 and SQS calls (the bound):\n",
        );
        for r in &self.baseline {
            s.push_str(&line(r, "concurrency"));
        }
        s.push_str("plain SDK loop direct to the engine (without the layer):\n");
        for r in &self.direct {
            s.push_str(&line(r, "concurrency"));
        }
        if let (Some(l), Some(d)) = (Self::best(&self.baseline), Self::best(&self.direct)) {
            s.push_str(&format!(
                "fidelity layer: {:.1} objects/s through it, {:.1} direct: {:.0}% of direct\n",
                l.rate(),
                d.rate(),
                100.0 * l.rate() / d.rate().max(1e-9)
            ));
        }
        if let (Some(v), Some(b)) = (Self::best(&self.validator), Self::best(&self.baseline)) {
            s.push_str(&format!(
                "best: validator {:.1} objects/s (pollers {}), bound {:.1} objects/s (concurrency {}): ratio {:.0}%\n",
                v.rate(),
                v.concurrency,
                b.rate(),
                b.concurrency,
                100.0 * v.rate() / b.rate().max(1e-9)
            ));
        }
        s.push_str(&format!(
            "validator initialisation (configuration + clients): {:.2} ms\n",
            self.init.as_secs_f64() * 1e3
        ));
        s
    }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx.min(v.len() - 1)]
}

/// What `bench validator` measures.
#[derive(Debug, Clone)]
pub struct ValidatorPlan {
    /// Objects per round.
    pub objects: usize,
    /// Poller counts of the validator's rounds.
    pub pollers: Vec<usize>,
    /// Concurrency levels of the plain loop's rounds.
    pub concurrencies: Vec<usize>,
    /// Install a fault that matches nothing in every fidelity layer.
    pub armed_fault: bool,
}

/// Runs the validator benchmark on `engine`.
pub async fn validator(
    engine: &Engine,
    spec: &TopologySpec,
    plan: &ValidatorPlan,
) -> Result<ValidatorBench, String> {
    let caps = engine.capabilities();
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let suffix = new_suffix();
    let timing = spec.profile("fast").cloned().ok_or("no fast profile")?;
    let (topology, _, mode) = provision_for_engine(
        &clients,
        spec,
        &suffix,
        timing,
        &caps,
        crate::topology::provision::Via::Direct,
    )
    .await
    .map_err(|e| e.to_string())?;
    let result = run(engine, &clients, &topology, mode, plan).await;
    teardown(&clients, spec, &suffix).await;
    result
}

async fn run(
    engine: &Engine,
    clients: &Clients,
    topology: &Topology,
    mode: replication::ReplicationMode,
    plan: &ValidatorPlan,
) -> Result<ValidatorBench, String> {
    let (objects, pollers, concurrencies, armed_fault) = (
        plan.objects,
        &plan.pollers,
        &plan.concurrencies,
        plan.armed_fault,
    );
    let caps = engine.capabilities();
    // Start with the validator paused so uploads do not trigger it.
    let mut system = RunningSystem::start(
        clients.clone(),
        caps,
        topology.clone(),
        mode.clone(),
        &SystemOptions::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    system
        .set_paused(crate::topology::FunctionName::Validator, true)
        .await;
    let bucket = topology.buckets()[0].primary.clone();
    let keys: Vec<String> = (0..objects)
        .map(|i| format!("bench/object-{i:05}.bin"))
        .collect();
    futures::stream::iter(keys.iter())
        .map(|k| {
            let s3 = clients.s3.clone();
            let bucket = bucket.clone();
            async move {
                s3.put_object()
                    .bucket(&bucket)
                    .key(k)
                    .body(ByteStream::from(crate::payload::generated_bytes(k, 1024)))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(crate::errors::sdk)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    // Every replica lands now (the upload events never reach the paused validator).
    let replicator = system
        .replicator
        .clone()
        .ok_or("benchmarks need the harness replicator (a local engine)")?;
    for _ in 0..600 {
        replicator.pass().await?;
        if replicator.held().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Drop the upload events: every round sends its own copies of the same bodies.
    system.stop().await;
    // A fidelity layer of its own for the plain loop (the system's stopped with it).
    let proxy = crate::fidelity::proxy::GapProxy::start(&clients.endpoint)
        .await
        .map_err(|e| e.to_string())?;
    proxy.set_replicator(replicator.clone()).await;
    if armed_fault {
        proxy
            .fault(crate::fidelity::faults::FaultSpec::unmatched())
            .await;
    }
    let layer_clients = Clients::for_endpoint(
        &proxy.endpoint,
        clients.kind,
        &topology.primary_region,
        &topology.replica_region,
    )
    .await;
    purge(clients, &topology.queues.validation.url).await?;
    let bodies = event_bodies(clients, topology, &caps, &bucket, &keys).await?;

    // Warm both paths up (engine code paths, connection pools, the validator's caches).
    let warm: Vec<String> = bodies.iter().take(20).cloned().collect();
    let replica = topology.buckets()[0].replica.clone();
    for c in [clients, &layer_clients] {
        send_all(clients, &topology.queues.validation.url, &warm).await?;
        plain_loop(
            c,
            &topology.queues.validation.url,
            &bucket,
            &replica,
            warm.len(),
            1,
        )
        .await?;
    }

    // Every object is replicated by now: measured rounds share the replicator (its version
    // map) without its background passes, which would compete with the validator.
    let mut validator_rounds = Vec::new();
    for &p in pollers {
        send_all(clients, &topology.queues.validation.url, &bodies).await?;
        system = RunningSystem::start(
            clients.clone(),
            caps,
            topology.clone(),
            mode.clone(),
            &SystemOptions {
                pollers: p,
                replicator: Some(replicator.clone()),
                ..SystemOptions::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        if let (true, Some(p)) = (armed_fault, &system.proxy) {
            p.fault(crate::fidelity::faults::FaultSpec::unmatched())
                .await;
        }
        let started = Instant::now();
        let done = system
            .observations
            .wait_until(Duration::from_secs(600), |obs| {
                obs.iter()
                    .filter(|o| matches!(o, Observation::Decision { .. }))
                    .count()
                    >= objects
            })
            .await;
        let elapsed = started.elapsed();
        let durations: Vec<Duration> = system
            .observations
            .snapshot()
            .await
            .into_iter()
            .filter_map(|o| match o {
                Observation::Decision { report, .. } => {
                    Some(Duration::from_millis(report.duration_ms))
                }
                _ => None,
            })
            .collect();
        system.stop().await;
        if !done {
            return Err(format!(
                "the validator decided {} of {objects} in 600s",
                durations.len()
            ));
        }
        validator_rounds.push(Round {
            concurrency: p,
            objects,
            elapsed,
            p50: percentile(durations.clone(), 0.5),
            p99: percentile(durations, 0.99),
        });
        purge(clients, &topology.queues.validation.url).await?;
    }

    let mut baseline_rounds = Vec::new();
    let mut direct_rounds = Vec::new();
    for &c in concurrencies {
        for (via, rounds) in [
            (&layer_clients, &mut baseline_rounds),
            (clients, &mut direct_rounds),
        ] {
            send_all(clients, &topology.queues.validation.url, &bodies).await?;
            rounds.push(
                plain_loop(
                    via,
                    &topology.queues.validation.url,
                    &bucket,
                    &replica,
                    objects,
                    c,
                )
                .await?,
            );
        }
    }

    let init_started = Instant::now();
    let sdk =
        crate::aws::sdk_config(&clients.endpoint, &topology.primary_region, clients.kind).await;
    let _validator = Validator::new(ValidatorConfig::default(), &sdk);
    let init = init_started.elapsed();

    Ok(ValidatorBench {
        engine: engine.kind.to_string(),
        objects,
        validator: validator_rounds,
        baseline: baseline_rounds,
        direct: direct_rounds,
        init,
        armed_fault,
    })
}

async fn purge(clients: &Clients, url: &str) -> Result<(), String> {
    // PurgeQueue is rate-limited on AWS; a receive/delete drain works everywhere.
    loop {
        let out = clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(crate::errors::sdk)?;
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() {
            return Ok(());
        }
        crate::esm::delete_receipts(
            &clients.sqs,
            url,
            msgs.iter().filter_map(|m| m.receipt_handle()),
        )
        .await?;
    }
}

/// The bodies the engine would deliver for each object's current version.
async fn event_bodies(
    clients: &Clients,
    topology: &Topology,
    caps: &crate::engine::Capabilities,
    bucket: &str,
    keys: &[String],
) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(
            crate::engine::gaps::object_created_event(
                &clients.s3,
                caps,
                &topology.account,
                &topology.primary_region,
                bucket,
                k,
                None,
            )
            .await?,
        );
    }
    Ok(out)
}

async fn send_all(clients: &Clients, url: &str, bodies: &[String]) -> Result<(), String> {
    for chunk in bodies.chunks(10) {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(b)
                    .build()
                    .ok()
            })
            .collect();
        clients
            .sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(crate::errors::sdk)?;
    }
    Ok(())
}

/// The engine's bound: `concurrency` workers each receive a batch of 5, make the calls the
/// validator makes per record (HeadObject on the primary version the event names, HeadObject
/// on the replica by that version id; the replication configuration and bucket tags are
/// cached by the validator), then delete the batch.
async fn plain_loop(
    clients: &Clients,
    url: &str,
    bucket: &str,
    replica: &str,
    objects: usize,
    concurrency: usize,
) -> Result<Round, String> {
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let latencies = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let finished: Arc<tokio::sync::Mutex<Option<Instant>>> =
        Arc::new(tokio::sync::Mutex::new(None));
    let started = Instant::now();
    let workers = (0..concurrency.max(1)).map(|_| {
        let (clients, done, latencies, finished) = (
            clients.clone(),
            done.clone(),
            latencies.clone(),
            finished.clone(),
        );
        let (url, bucket, replica) = (url.to_string(), bucket.to_string(), replica.to_string());
        tokio::spawn(async move {
            while done.load(std::sync::atomic::Ordering::SeqCst) < objects {
                let out = clients
                    .sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(5)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await
                    .map_err(crate::errors::sdk)?;
                let msgs = out.messages.unwrap_or_default();
                let per = futures::future::join_all(msgs.iter().map(|m| {
                    let (clients, bucket, replica) = (&clients, &bucket, &replica);
                    async move {
                        let t = Instant::now();
                        let body: serde_json::Value =
                            serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or_default();
                        let key = checksum_validator::event::decode_event_key(
                            body.pointer("/detail/object/key")
                                .and_then(|v| v.as_str())
                                .unwrap_or(""),
                        );
                        let version = body
                            .pointer("/detail/object/version-id")
                            .and_then(|v| v.as_str())
                            .map(str::to_string);
                        let head = clients
                            .s3
                            .head_object()
                            .bucket(bucket)
                            .key(&key)
                            .set_version_id(version)
                            .checksum_mode(ChecksumMode::Enabled)
                            .send()
                            .await;
                        let v = head.ok().and_then(|h| h.version_id().map(str::to_string));
                        let _ = clients
                            .s3_replica
                            .head_object()
                            .bucket(replica)
                            .key(&key)
                            .set_version_id(v)
                            .checksum_mode(ChecksumMode::Enabled)
                            .send()
                            .await;
                        t.elapsed()
                    }
                }))
                .await;
                crate::esm::delete_receipts(
                    &clients.sqs,
                    &url,
                    msgs.iter().filter_map(|m| m.receipt_handle()),
                )
                .await?;
                latencies.lock().await.extend(per);
                let total =
                    done.fetch_add(msgs.len(), std::sync::atomic::Ordering::SeqCst) + msgs.len();
                if total >= objects && !msgs.is_empty() {
                    // The round ends with the last object, not with the other workers' idle polls.
                    finished.lock().await.get_or_insert_with(Instant::now);
                }
            }
            Ok::<(), String>(())
        })
    });
    for w in futures::future::join_all(workers).await {
        w.map_err(|e| e.to_string())??;
    }
    let elapsed = finished
        .lock()
        .await
        .map(|t| t.duration_since(started))
        .unwrap_or_else(|| started.elapsed());
    let lat = latencies.lock().await.clone();
    Ok(Round {
        concurrency,
        objects,
        elapsed,
        p50: percentile(lat.clone(), 0.5),
        p99: percentile(lat, 0.99),
    })
}

/// Upload-to-validated latency of the whole pipeline (`harness bench e2e`).
#[derive(Debug, Clone)]
pub struct E2eBench {
    pub engine: String,
    pub objects: usize,
    pub pollers: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Requests through the fidelity layer, and the time spent in it.
    pub layer_requests: u64,
    pub layer_time: Duration,
}

impl E2eBench {
    pub fn render(&self) -> String {
        let per_object = self.layer_time.as_secs_f64() * 1e3 / self.objects.max(1) as f64;
        format!(
            "bench e2e on {}: {} objects of 1 KiB uploaded through the fidelity layer, replicas copied as soon as each upload is known (no replication delay), validator pollers {}\n\
             upload to validated: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({:.1} objects/s, {:.2}s)\n\
             fidelity layer: {} requests ({:.1} per object), {:.2} ms per object spent in the layer ({:.3} ms per request): {:.1}% of the p50\n",
            self.engine,
            self.objects,
            self.pollers,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.objects as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.elapsed.as_secs_f64(),
            self.layer_requests,
            self.layer_requests as f64 / self.objects.max(1) as f64,
            per_object,
            self.layer_time.as_secs_f64() * 1e3 / self.layer_requests.max(1) as f64,
            100.0 * per_object / (self.p50.as_secs_f64() * 1e3).max(1e-9),
        )
    }
}

/// Uploads `objects` objects through the fidelity layer and measures how long each takes to
/// be validated, with every replica copied as soon as its upload is known.
pub async fn e2e(
    engine: &Engine,
    spec: &TopologySpec,
    objects: usize,
    pollers: usize,
) -> Result<E2eBench, String> {
    let caps = engine.capabilities();
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let suffix = new_suffix();
    let mut timing = spec.profile("fast").cloned().ok_or("no fast profile")?;
    timing.replication_lag_seconds = 0.0;
    timing.replication_fallback_seconds = 0.0;
    let (topology, _, mode) = provision_for_engine(
        &clients,
        spec,
        &suffix,
        timing,
        &caps,
        crate::topology::provision::Via::Direct,
    )
    .await
    .map_err(|e| e.to_string())?;
    let result = e2e_run(&clients, &topology, caps, mode, objects, pollers).await;
    teardown(&clients, spec, &suffix).await;
    result
}

async fn e2e_run(
    clients: &Clients,
    topology: &Topology,
    caps: crate::engine::Capabilities,
    mode: replication::ReplicationMode,
    objects: usize,
    pollers: usize,
) -> Result<E2eBench, String> {
    let system = RunningSystem::start(
        clients.clone(),
        caps,
        topology.clone(),
        mode,
        &SystemOptions {
            pollers,
            ..SystemOptions::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let replicator = system
        .replicator
        .clone()
        .ok_or("benchmarks need the harness replicator (a local engine)")?;
    let layer = system
        .proxy
        .as_ref()
        .ok_or("the fidelity layer did not start")?;
    let before = layer.stats();
    // When each version was validated: a watcher over the observations, 5 ms resolution.
    let validated: Arc<tokio::sync::Mutex<std::collections::HashMap<String, Instant>>> =
        Default::default();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let watcher = {
        let (obs, validated) = (system.observations.clone(), validated.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let (start, new) = obs.since(seen).await;
                seen = start + new.len();
                let now = Instant::now();
                for o in new {
                    if let Observation::Decision { report, .. } = o {
                        if report.outcome == checksum_validator::Outcome::Validated {
                            if let Some(v) = report.object.and_then(|o| o.version_id) {
                                validated.lock().await.entry(v).or_insert(now);
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = stop_rx.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
    };
    let buckets: Vec<String> = topology
        .buckets()
        .iter()
        .map(|b| b.primary.clone())
        .collect();
    let started = Instant::now();
    let uploads = futures::stream::iter(0..objects)
        .map(|i| {
            let (s3, replicator) = (system.clients.s3.clone(), replicator.clone());
            let bucket = buckets[i % buckets.len()].clone();
            async move {
                let key = format!("e2e/object-{i:05}.bin");
                let t = Instant::now();
                let out = s3
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(ByteStream::from(crate::payload::generated_bytes(
                        &key, 1024,
                    )))
                    .send()
                    .await
                    .map_err(crate::errors::sdk)?;
                let version = out.version_id().unwrap_or_default().to_string();
                replicator.discover_key(&bucket, &key).await?;
                replicator.release(&bucket, &version).await?;
                Ok::<_, String>((version, t))
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if validated.lock().await.len() >= objects {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {objects} validated within 900s",
                validated.lock().await.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    let done = validated.lock().await.clone();
    let latencies: Vec<Duration> = uploads
        .iter()
        .filter_map(|(v, t)| done.get(v).map(|d| d.saturating_duration_since(*t)))
        .collect();
    let after = layer.stats();
    system.stop().await;
    Ok(E2eBench {
        engine: clients.kind.to_string(),
        objects,
        pollers,
        elapsed,
        p50: percentile(latencies.clone(), 0.5),
        p99: percentile(latencies.clone(), 0.99),
        max: latencies.iter().max().copied().unwrap_or_default(),
        layer_requests: after.0 - before.0,
        layer_time: after.1.saturating_sub(before.1),
    })
}
