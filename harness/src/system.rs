//! The running backup system on top of a provisioned topology: the real validator and
//! notifier behind their event source mappings, the alert sink, and the harness replicator
//! where replication is emulated.

use std::sync::Arc;
use std::time::Duration;

use checksum_validator::{Validator, ValidatorConfig};
use failure_notifier::{Notifier, NotifierConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aws::Clients;
use crate::engine::Capabilities;
use crate::esm::{self, Function, Mapping};
use crate::observe::Observations;
use crate::replication::{ReplicationMode, Replicator};
use crate::topology::Topology;

/// Knobs for starting the system.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Concurrent pollers per mapping.
    pub pollers: usize,
    /// Project name used in alert subjects.
    pub project: String,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            pollers: 1,
            project: "autobackup".into(),
        }
    }
}

/// The system while it runs; [`RunningSystem::stop`] ends every task it started.
pub struct RunningSystem {
    pub topology: Topology,
    pub clients: Clients,
    pub observations: Observations,
    pub replicator: Option<Arc<Replicator>>,
    pub mode: ReplicationMode,
    pub validator: Arc<Validator>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The validator configuration for a topology, as its Lambda environment would set it.
pub fn validator_config(topology: &Topology) -> ValidatorConfig {
    let t = &topology.timing;
    ValidatorConfig {
        failure_queue_url: Some(topology.queues.failure.url.clone()),
        replica_region: Some(topology.replica_region.clone()),
        replica_bucket_map: if topology.replication_on_engine {
            Default::default()
        } else {
            topology.replica_map()
        },
        lag_budget: Duration::from_secs_f64(t.lag_budget_seconds),
        retry_base: Duration::from_secs_f64(t.retry_base_seconds),
        retry_max: Duration::from_secs_f64(t.retry_max_seconds),
        max_receive_count: topology.max_receive_count,
        alert_on_unverifiable: true,
        record_concurrency: 8,
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
    ) -> RunningSystem {
        let observations = Observations::default();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let replicator = if mode.is_emulated() {
            let pairs = topology
                .buckets()
                .iter()
                .map(|b| (b.primary.clone(), b.replica.clone()))
                .collect();
            let r = Arc::new(Replicator::new(clients.clone(), pairs));
            let runner = r.clone();
            let mut stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    _ = runner.run(Duration::from_millis(250)) => {},
                    _ = stop.changed() => {},
                }
            }));
            Some(r)
        } else {
            None
        };

        let validator = Arc::new(Validator::new(validator_config(&topology), &clients.sdk));
        let notifier = Arc::new(Notifier::new(
            NotifierConfig {
                topic_arn: topology.topic_arn.clone(),
                project: opts.project.clone(),
            },
            &clients.sdk,
        ));
        let wait = topology.timing.long_poll_seconds as i32;
        let batch = topology.batch_size as i32;
        let base = |role: &str, queue: &crate::topology::QueueRef, function: Function| Mapping {
            role: role.to_string(),
            queue: queue.clone(),
            function,
            batch_size: batch,
            wait_seconds: wait,
            pollers: opts.pollers,
            caps,
            replicator: replicator.clone(),
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
                Function::Notifier(notifier),
            ),
        ];
        for m in mappings {
            tasks.extend(esm::spawn(
                m,
                clients.sqs.clone(),
                observations.clone(),
                stop_rx.clone(),
            ));
        }
        tasks.push(esm::spawn_alert_sink(
            topology.queues.alerts.clone(),
            clients.sqs.clone(),
            observations.clone(),
            stop_rx,
            wait,
        ));
        RunningSystem {
            topology,
            clients,
            observations,
            replicator,
            mode,
            validator,
            stop: stop_tx,
            tasks,
        }
    }

    /// Stops every poller and the replicator, waiting for in-flight batches to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    }
}
