//! The running backup system on top of a provisioned topology: the real validator and
//! notifier behind their event source mappings, the alert sink, the harness replicator
//! where replication is emulated, and the fidelity layer every client talks through.
//!
//! The validator's mapping gets this module's [`ReplicationHooks`]: before a delivery they
//! fill the engine gaps of the event body (`engine::gaps`) and make sure the replicator
//! knows the version (so its status is reported from the first read); after it they tell
//! the replicator the first attempt is over (its copy may land from then on).
//!
//! With [`FunctionsMode::Deployed`] the functions are the packaged binaries in the engine's
//! Lambda service behind the engine's mappings ([`crate::deployed`]); what they decide is
//! read from their logs into the same observations, and the first-attempt signal comes from
//! the validator's decision lines. The engine hands bodies straight to the function, so
//! the `before` hook cannot run there (see `engine::gaps`).
//!
//! Floor 4: may import floors 0-3 (ground, engine, topology, fidelity).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use checksum_validator::{Validator, ValidatorConfig};
use failure_notifier::{Notifier, NotifierConfig};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aws::Clients;
use crate::deployed::DeployError;
use crate::deployed::{DeploySpec, Deployment, EnvOverride, FunctionsMode};
use crate::engine::{gaps, Capabilities};
use crate::esm::{self, DeliveryHooks, Function, Mapping};
use crate::fidelity::checksums::DefaultChecksums;
use crate::fidelity::proxy::GapProxy;
use crate::fidelity::replicator::{ReplicationTiming, Replicator};
use crate::history::History;
use crate::observe::Observations;
use crate::topology::replication::ReplicationMode;
use crate::topology::{FunctionName, Topology};

/// Knobs for starting the system.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Concurrent pollers per mapping.
    pub pollers: usize,
    /// Project name used in alert subjects.
    pub project: String,
    /// The validator's deep mode (`DEEP_VERIFY`).
    pub deep_verify: bool,
    /// The validator's `ALERT_ON_UNVERIFIABLE`.
    pub alert_on_unverifiable: bool,
    /// Functions talk to the engine directly, without the fidelity layer (no replication
    /// status or replica version ids for emulated replication, no outages): for measuring
    /// the layer's cost in benchmarks.
    pub direct: bool,
    /// Reuse this replicator (what it copied and the version ids it maps) instead of a new
    /// one; its passes are then the caller's to schedule. Benchmarks keep one across rounds.
    pub replicator: Option<Arc<Replicator>>,
    /// Keep only the last N observations (counts cover all): `harness up` runs for days.
    /// `None` keeps everything, as a scenario's transcript needs.
    pub observation_cap: Option<usize>,
    /// Keep the fidelity layer's per-version history (the replicator's settled versions
    /// and replica ids, the default checksums) in files in this directory instead of
    /// memory: `harness up`'s memory then stays flat whatever the object count.
    pub history_dir: Option<std::path::PathBuf>,
    /// In-process handlers (default) or the deployed binaries.
    pub functions: FunctionsMode,
    /// Environment variables set on deployed functions over the topology's.
    pub function_env: Vec<EnvOverride>,
    /// The engine's own log, where a deployed function's failed start may only show.
    pub engine_log: Option<std::path::PathBuf>,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            pollers: 1,
            project: "autobackup".into(),
            deep_verify: false,
            alert_on_unverifiable: true,
            direct: false,
            replicator: None,
            observation_cap: None,
            history_dir: None,
            functions: FunctionsMode::InProcess,
            function_env: Vec::new(),
            engine_log: None,
        }
    }
}

/// The files of [`SystemOptions::history_dir`]: the replicator's, the default checksums'.
pub const HISTORY_FILES: [&str; 2] = ["replication.redb", "checksums.redb"];

/// The system while it runs; [`RunningSystem::stop`] ends every task it started.
pub struct RunningSystem {
    pub topology: Topology,
    /// Clients through the fidelity layer: what AWS would show (the engine's own clients
    /// when the functions run direct).
    pub clients: Clients,
    /// Clients of the engine itself.
    pub engine_clients: Clients,
    /// (bucket, key, version id) of every upload the harness made, in order.
    pub uploads: tokio::sync::Mutex<Vec<(String, String, String)>>,
    pub observations: Observations,
    pub replicator: Option<Arc<Replicator>>,
    pub mode: ReplicationMode,
    pub validator: Arc<Validator>,
    /// The fidelity layer every client talks through (replication as AWS shows it,
    /// outages); `None` when they talk to the engine directly.
    pub proxy: Option<GapProxy>,
    paused: std::collections::HashMap<
        FunctionName,
        (watch::Sender<bool>, Arc<std::sync::atomic::AtomicUsize>),
    >,
    faults: std::collections::HashMap<FunctionName, Arc<esm::InvocationFaults>>,
    /// The deployed functions, with `--functions deployed`.
    pub deployment: Option<Arc<Deployment>>,
    /// The first error that keeps a deployed function from running at all.
    fatal: watch::Receiver<Option<String>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The validator configuration for a topology, as its Lambda environment would set it.
pub fn validator_config(topology: &Topology, opts: &SystemOptions) -> ValidatorConfig {
    let t = &topology.timing;
    ValidatorConfig {
        failure_queue_url: Some(topology.queues.failure.url.clone()),
        replica_region: Some(topology.replica_region.clone()),
        replica_bucket_map: Default::default(),
        lag_budget: Duration::from_secs_f64(t.lag_budget_seconds),
        overdue_cap: ValidatorConfig::default().overdue_cap,
        retry_base: Duration::from_secs_f64(t.retry_base_seconds),
        retry_max: Duration::from_secs_f64(t.retry_max_seconds),
        max_receive_count: topology.max_receive_count,
        alert_on_unverifiable: opts.alert_on_unverifiable,
        record_concurrency: 8,
        force_path_style: true,
        deep_verify: opts.deep_verify,
        deep_verify_max_bytes: ValidatorConfig::default().deep_verify_max_bytes,
        // Lambda's default leaves a second; a short (scenario) timeout keeps three quarters.
        deadline_margin: Duration::from_secs_f64((t.function_timeout_seconds / 4.0).min(1.0)),
    }
}

/// The notifier configuration for a topology, as its Lambda environment would set it.
pub fn notifier_config(topology: &Topology, opts: &SystemOptions) -> NotifierConfig {
    NotifierConfig {
        topic_arn: topology.topic_arn.clone(),
        project: opts.project.clone(),
        ledger_bucket: Some(topology.names.alert_ledger.clone()),
        // A claim outlives any invocation that could still be publishing under it.
        claim_period: Duration::from_secs_f64(2.0 * topology.timing.function_timeout_seconds),
        force_path_style: true,
    }
}

impl RunningSystem {
    pub async fn start(
        clients: Clients,
        caps: Capabilities,
        topology: Topology,
        mode: ReplicationMode,
        opts: &SystemOptions,
    ) -> Result<RunningSystem, DeployError> {
        let observations = match opts.observation_cap {
            Some(cap) => Observations::bounded(cap),
            None => Observations::default(),
        };
        let proxy = if opts.direct {
            None
        } else {
            let checksums = match &opts.history_dir {
                Some(dir) => DefaultChecksums::with_history(
                    History::on_disk(&dir.join(HISTORY_FILES[1])).map_err(std::io::Error::other)?,
                ),
                None => DefaultChecksums::default(),
            };
            Some(GapProxy::start_with(&clients.endpoint, checksums).await?)
        };
        let function_endpoint = proxy
            .as_ref()
            .map(|p| p.endpoint.clone())
            .unwrap_or_else(|| clients.endpoint.clone());
        let function_sdk =
            crate::aws::sdk_config(&function_endpoint, &topology.primary_region, clients.kind)
                .await;
        let view = Clients::for_endpoint(
            &function_endpoint,
            clients.kind,
            &topology.primary_region,
            &topology.replica_region,
        )
        .await;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let replicator = if let Some(shared) = &opts.replicator {
            if let Some(p) = &proxy {
                p.set_replicator(shared.clone()).await;
            }
            shared.observe(observations.clone());
            Some(shared.clone())
        } else if mode.is_emulated() {
            let t = &topology.timing;
            let mut r = Replicator::new(
                clients.clone(),
                topology.replication.clone(),
                ReplicationTiming {
                    lag: Duration::from_secs_f64(t.replication_lag_seconds.max(0.0)),
                    fallback: Duration::from_secs_f64(t.replication_fallback_seconds.max(0.0)),
                },
            );
            if let Some(dir) = &opts.history_dir {
                let history =
                    History::on_disk(&dir.join(HISTORY_FILES[0])).map_err(std::io::Error::other)?;
                r = r.keep_history(history);
            }
            let r = Arc::new(r);
            r.observe(observations.clone());
            let runner = r.clone();
            let mut stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = runner.run(Duration::from_millis(250)) => {},
                    _ = stop.changed() => {},
                }
            }));
            if let Some(p) = &proxy {
                p.set_replicator(r.clone()).await;
            }
            Some(r)
        } else {
            None
        };

        let validator = Arc::new(Validator::new(
            validator_config(&topology, opts),
            &function_sdk,
        ));
        let notifier = Arc::new(Notifier::new(
            notifier_config(&topology, opts),
            &function_sdk,
        ));
        let mut paused = std::collections::HashMap::new();
        let (validator_pause, validator_paused) = watch::channel(false);
        let (notifier_pause, notifier_paused) = watch::channel(false);
        let validator_active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let notifier_active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        paused.insert(
            FunctionName::Validator,
            (validator_pause, validator_active.clone()),
        );
        paused.insert(
            FunctionName::Notifier,
            (notifier_pause, notifier_active.clone()),
        );
        let wait = topology.timing.long_poll_seconds as i32;
        let batch = topology.batch_size as i32;
        let faults = std::collections::HashMap::from([
            (
                FunctionName::Validator,
                Arc::new(esm::InvocationFaults::default()),
            ),
            (
                FunctionName::Notifier,
                Arc::new(esm::InvocationFaults::default()),
            ),
        ]);
        let timeout = Duration::from_secs_f64(topology.timing.function_timeout_seconds);
        let batching_window = Duration::from_secs_f64(topology.timing.batching_window_seconds);
        let hooks: Option<Arc<dyn DeliveryHooks>> = replicator.as_ref().map(|r| {
            Arc::new(ReplicationHooks {
                replicator: r.clone(),
                caps,
            }) as Arc<dyn DeliveryHooks>
        });
        let base = |role: &str, queue: &crate::topology::QueueRef, function: Function| Mapping {
            role: role.to_string(),
            queue: queue.clone(),
            paused: match function {
                Function::Validator(_) => validator_paused.clone(),
                Function::Notifier(_) => notifier_paused.clone(),
            },
            active: match function {
                Function::Validator(_) => validator_active.clone(),
                Function::Notifier(_) => notifier_active.clone(),
            },
            hooks: match function {
                Function::Validator(_) => hooks.clone(),
                Function::Notifier(_) => None,
            },
            faults: faults[&match function {
                Function::Validator(_) => FunctionName::Validator,
                Function::Notifier(_) => FunctionName::Notifier,
            }]
                .clone(),
            timeout,
            batching_window,
            function,
            batch_size: batch,
            wait_seconds: wait,
            pollers: opts.pollers,
            region: topology.primary_region.clone(),
        };
        let mappings = [
            base(
                "validation",
                &topology.queues.validation,
                Function::Validator(validator.clone()),
            ),
            base(
                "failure",
                &topology.queues.failure,
                Function::Notifier(notifier.clone()),
            ),
            // The seed's Lambda DLQ setting never fires for SQS triggers: the notifier consumes
            // the validation DLQ too, so a dead letter alerts without a manual redrive.
            base(
                "validation-dlq",
                &topology.queues.validation_dlq,
                Function::Notifier(notifier.clone()),
            ),
            // Events EventBridge could not deliver: each alerts (the object was never
            // validated).
            base(
                "events-dlq",
                &topology.queues.events_dlq,
                Function::Notifier(notifier.clone()),
            ),
            // Alerts whose publishes kept failing (an SNS outage longer than the failure
            // queue's receives) wait here; the notifier keeps trying them, so none is
            // stranded in silence.
            base(
                "failure-dlq",
                &topology.queues.failure_dlq,
                Function::Notifier(notifier),
            ),
        ];
        let (fatal_tx, fatal) = watch::channel(None);
        let deployment = match opts.functions {
            FunctionsMode::InProcess => {
                for m in mappings {
                    tasks.extend(esm::spawn(
                        m,
                        clients.sqs.clone(),
                        observations.clone(),
                        stop_rx.clone(),
                    ));
                }
                None
            }
            FunctionsMode::Deployed => {
                drop(mappings);
                let spec = DeploySpec {
                    validator: &validator_config(&topology, opts),
                    notifier: &notifier_config(&topology, opts),
                    endpoint: &function_endpoint,
                    overrides: &opts.function_env,
                    mappings: true,
                };
                let d = Arc::new(if topology.functions_in_stack {
                    Deployment::adopt(&clients.sdk, &topology, &spec).await?
                } else {
                    Deployment::create(&clients.sdk, &topology, &spec).await?
                });
                tasks.push(d.follow(
                    &topology,
                    observations.clone(),
                    replicator.clone(),
                    fatal_tx,
                    opts.engine_log.clone(),
                    stop_rx.clone(),
                ));
                Some(d)
            }
        };
        tasks.push(esm::spawn_alert_sink(
            topology.queues.alerts.clone(),
            clients.sqs.clone(),
            observations.clone(),
            stop_rx,
            wait,
        ));
        Ok(RunningSystem {
            topology,
            clients: view,
            engine_clients: clients,
            uploads: Default::default(),
            observations,
            replicator,
            mode,
            validator,
            proxy,
            paused,
            faults,
            deployment,
            fatal,
            stop: stop_tx,
            tasks,
        })
    }

    /// Resolves with the first error that keeps a deployed function from running (its own
    /// configuration error, read from its log); never for in-process functions.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.clone();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The invocation faults (overruns, throttles) of a function's mappings.
    pub fn faults(&self, function: FunctionName) -> &esm::InvocationFaults {
        &self.faults[&function]
    }

    /// Pauses or resumes a function's triggers (like disabling its event source mapping).
    /// A pause returns once no poller is inside a receive or a delivery, so no message is
    /// picked up after it returns.
    pub async fn set_paused(&self, function: FunctionName, paused: bool) {
        if let Some(d) = &self.deployment {
            if let Err(e) = d.set_enabled(function, !paused).await {
                tracing::warn!(error = %e, "pausing or resuming a deployed function's mappings failed");
            }
            return;
        }
        let Some((tx, active)) = self.paused.get(&function) else {
            return;
        };
        let _ = tx.send(paused);
        if paused {
            while active.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Stops every poller and the replicator, waiting for in-flight batches to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        if let Some(d) = &self.deployment {
            d.delete().await;
        }
    }

    /// Stops every task at once without waiting for in-flight work (the engine is gone:
    /// their calls could only time out).
    pub fn abort(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The validator mapping's hooks where the harness replicates (see the module docs).
pub struct ReplicationHooks {
    pub replicator: Arc<Replicator>,
    pub caps: Capabilities,
}

impl DeliveryHooks for ReplicationHooks {
    fn before<'a>(&'a self, event: &'a mut SqsEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for record in &mut event.records {
                let Some(body) = record.body.as_deref() else {
                    continue;
                };
                let Some(fields) = gaps::event_fields(body) else {
                    continue;
                };
                let version = match &fields.version_id {
                    Some(v) => Some(v.clone()),
                    None => match &fields.etag {
                        Some(etag) => {
                            self.replicator
                                .version_for_event(&fields.bucket, &fields.key, etag, fields.size)
                                .await
                        }
                        None => None,
                    },
                };
                if let Some(v) = &version {
                    self.replicator
                        .ensure_known(&fields.bucket, &fields.key, v)
                        .await;
                }
                record.body = Some(gaps::rewrite_event(&self.caps, body, version.as_deref()));
            }
        })
    }

    fn after<'a>(&'a self, event: &'a SqsEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for record in &event.records {
                let Some(fields) = record.body.as_deref().and_then(gaps::event_fields) else {
                    continue;
                };
                if let Some(v) = &fields.version_id {
                    self.replicator.first_attempt_done(&fields.bucket, v).await;
                }
            }
        })
    }
}
