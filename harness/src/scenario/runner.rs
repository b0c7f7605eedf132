//! Runs a scenario on an engine: provision, start the system, play the steps (`play.rs`),
//! settle, check expectations (`expect.rs`) and invariants, gather and render the
//! transcript, tear down; and [`Session`], one topology for many generated workloads.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::expect::check_expectations;
use super::file::Scenario;
use super::invariants::{self, UploadTruth};

use super::play::{play, settle, Truths};
use super::transcript::{self, depth};
use crate::agent::AgentSession;
use crate::aws::Clients;
use crate::engine::Engine;
use crate::observe::{Event, Observation};
use crate::scenario::ScenarioError;
use crate::system::{RunningSystem, SystemOptions};
use crate::topology::provision::{provision_for_engine, provision_for_engine_with};
use crate::topology::{new_suffix, teardown::teardown, TopologySpec};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Leave the topology in place afterwards.
    pub keep: bool,
    /// Use this suffix instead of a random one.
    pub suffix: Option<String>,
    /// In-process handlers (default) or the deployed binaries in the engine's Lambda.
    pub functions: crate::deployed::FunctionsMode,
    /// Environment variables set on deployed functions over the topology's.
    pub function_env: Vec<crate::deployed::EnvOverride>,
    /// Provision with direct calls or through the CloudFormation templates.
    pub via: crate::topology::provision::Via,
    /// With `via` CloudFormation: these template bodies (replica, primary) instead of the
    /// ones generated from the topology (a test's deliberately broken copy).
    pub templates: Option<[String; 2]>,
}

/// Where the time went.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub provision: Duration,
    pub steps: Duration,
    pub settle: Duration,
    pub teardown: Duration,
    pub total: Duration,
}

/// The result of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub scenario: String,
    pub engine: String,
    pub transcript: String,
    pub replication: String,
    pub suffix: String,
    /// Expectations from the scenario's `[expect]` that did not hold.
    pub unmet: Vec<String>,
    pub timings: Timings,
    /// Everything observed while the system ran, stamped with offsets from its start: the
    /// input of the HTML report's timeline (`report::timeline`).
    pub events: Vec<Event>,
    /// Primary bucket -> its category, for labelling object versions.
    pub categories: BTreeMap<String, String>,
}

/// How often queue depths are sampled while a scenario plays and settles.
const DEPTH_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Plays `scenario` on `engine`.
pub async fn run(
    engine: &Engine,
    spec: &TopologySpec,
    scenario: &Scenario,
    opts: &RunOptions,
) -> Result<RunOutcome, ScenarioError> {
    let total = Instant::now();
    if opts.functions == crate::deployed::FunctionsMode::Deployed {
        crate::deployed::check_engine(engine)?;
    }
    if opts.via == crate::topology::provision::Via::Cloudformation {
        crate::topology::provision::stack::check_engine(engine)?;
    }
    let base = spec.profile(&scenario.profile).ok_or_else(|| {
        ScenarioError::Other(format!(
            "{}: unknown profile {:?} (profiles: {})",
            scenario.path.display(),
            scenario.profile,
            spec.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let timing = scenario.timing.apply(base);
    let lag_budget = timing.lag_budget_seconds;
    timing.check().map_err(|why| {
        ScenarioError::Other(format!(
            "{}: [timing] on profile {:?}: {why}",
            scenario.path.display(),
            scenario.profile
        ))
    })?;
    let caps = engine.capabilities();
    let spec = &scenario.topology.apply(spec);
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let suffix = opts.suffix.clone().unwrap_or_else(new_suffix);

    let t = Instant::now();
    // With the templates, deployed functions are the primary stack's own.
    let stack = crate::topology::provision::StackInputs {
        templates: opts.templates.clone(),
        functions: opts.functions == crate::deployed::FunctionsMode::Deployed,
    };
    let (topology, _report, mode) =
        provision_for_engine_with(&clients, spec, &suffix, timing, &caps, opts.via, stack).await?;
    let provision_time = t.elapsed();

    let system = RunningSystem::start(
        clients.clone(),
        caps,
        topology,
        mode.clone(),
        &SystemOptions {
            deep_verify: scenario.validator.deep,
            alert_on_unverifiable: scenario.validator.alert_on_unverifiable.unwrap_or(true),
            functions: opts.functions,
            function_env: opts.function_env.clone(),
            engine_log: engine.log.clone(),
            ..SystemOptions::default()
        },
    )
    .await;
    let system = match system {
        Ok(s) => s,
        Err(e) => {
            if !opts.keep {
                let report = teardown(&clients, spec, &suffix).await;
                for p in report.problems {
                    tracing::warn!("teardown: {p}");
                }
            }
            return Err(match e {
                e @ crate::deployed::DeployError::Io(_) => {
                    ScenarioError::Other(format!("starting the fidelity layer: {e}"))
                }
                e => ScenarioError::from(e),
            });
        }
    };

    let mut agent = AgentSession::new(&clients, &system.topology, &scenario.agent)
        .map_err(|e| ScenarioError::Other(format!("creating the agent's work directory: {e}")))?;
    let mut truths = Truths::new(spec, lag_budget);
    let sampler = sample_depths(&system);
    let t = Instant::now();
    let played = tokio::select! {
        r = play(&system, engine, scenario, &mut agent, &mut truths) => r,
        why = engine.watch() => Err(ScenarioError::EngineExited(why)),
        why = system.fatal() => Err(ScenarioError::FunctionFailed(why)),
    };
    let steps_time = t.elapsed();

    let t = Instant::now();
    let settled = match &played {
        Ok(()) => tokio::select! {
            r = settle(&system, Duration::from_secs(120)) => r,
            why = engine.watch() => Err(why),
        },
        Err(_) => Ok(()),
    };
    let settle_time = t.elapsed();
    sampler.abort();
    let observations = system.observations.snapshot().await;
    let events = system.observations.timeline().await;
    let topology = system.topology.clone();
    // What clients see through the fidelity layer, gathered while it still runs.
    let gathered = match (&played, &settled) {
        (Ok(()), Ok(())) => {
            let mut facts = transcript::gather(&system.clients, &topology, observations).await;
            if let (Ok(f), Some(p)) = (&mut facts, &system.proxy) {
                f.faults = p.fault_report().await;
            }
            Some(facts)
        }
        _ => None,
    };
    let uploads = system.uploads.lock().await.clone();
    // With the engine gone there is nothing to wait for and nothing to tear down.
    let engine_gone = engine.exited().is_some();
    let mut system = system;
    if opts.keep {
        // The deployed functions (and their logs) stay with the topology.
        system.deployment = None;
    }
    if engine_gone {
        system.abort();
    } else {
        system.stop().await;
    }

    let result = match (played, settled, gathered) {
        (Err(e), _, _) => Err(e),
        (Ok(()), Err(e), _) => Err(ScenarioError::Other(format!(
            "{}: the system did not settle: {e}",
            scenario.path.display()
        ))),
        (Ok(()), Ok(()), None) => Err(ScenarioError::Other("nothing was gathered".into())),
        (Ok(()), Ok(()), Some(gathered)) => match gathered {
            Ok(mut facts) => {
                if scenario.uses_agent() {
                    facts.agent = Some(transcript::AgentFacts {
                        runs: agent.runs.clone(),
                        work: agent.work_dir().to_path_buf(),
                    });
                }
                let mut unmet = check_expectations(scenario, &topology, &facts, &agent, &uploads);
                truths.finish(scenario);
                let found = invariants::check(&invariants::RunFacts {
                    uploads: &truths.uploads,
                    observations: &facts.observations,
                    depths: &facts.depths,
                    deep_verify: scenario.validator.deep,
                    alert_on_unverifiable: scenario.validator.alert_on_unverifiable.unwrap_or(true),
                });
                unmet.extend(invariants::compare(&scenario.expect.violations, &found));
                let mut header = vec![
                    ("scenario".to_string(), scenario.name.clone()),
                    ("description".to_string(), scenario.description.clone()),
                    ("profile".to_string(), scenario.profile.clone()),
                ];
                let overrides = scenario.timing.describe();
                header.push((
                    "timing overrides".to_string(),
                    if overrides.is_empty() {
                        "none".to_string()
                    } else {
                        overrides.join(", ")
                    },
                ));
                if !truths.refused.is_empty() {
                    header.push(("refused uploads".to_string(), truths.refused.join("; ")));
                }
                let topology_overrides = scenario.topology.describe();
                if !topology_overrides.is_empty() {
                    header.push((
                        "topology overrides".to_string(),
                        topology_overrides.join(", "),
                    ));
                }
                Ok((
                    transcript::render(&header, &facts, &topology, &engine.endpoint),
                    unmet,
                ))
            }
            Err(e) => Err(ScenarioError::Other(format!(
                "gathering the outcome failed: {e}"
            ))),
        },
    };

    let t = Instant::now();
    if !opts.keep && !engine_gone {
        let report = teardown(&clients, spec, &suffix).await;
        for p in report.problems {
            tracing::warn!("teardown: {p}");
        }
    }
    let teardown_time = t.elapsed();
    if !opts.keep {
        agent.cleanup();
    }
    let (transcript, unmet) = result?;
    Ok(RunOutcome {
        scenario: scenario.name.clone(),
        engine: engine.kind.to_string(),
        transcript,
        replication: mode.to_string(),
        suffix,
        unmet,
        timings: Timings {
            provision: provision_time,
            steps: steps_time,
            settle: settle_time,
            teardown: teardown_time,
            total: total.elapsed(),
        },
        events,
        categories: topology
            .buckets()
            .iter()
            .map(|b| (b.primary.clone(), b.category.clone()))
            .collect(),
    })
}

/// Samples every queue's depth each [`DEPTH_SAMPLE_INTERVAL`] into the observations until
/// aborted, through the engine's own clients: never through the fidelity layer, whose
/// injected faults (an SQS outage's budget) a sample would consume.
fn sample_depths(system: &RunningSystem) -> tokio::task::JoinHandle<()> {
    let sqs = system.engine_clients.sqs.clone();
    let queues: Vec<(&'static str, String)> = system
        .topology
        .queues
        .all()
        .iter()
        .map(|(role, q)| (*role, q.url.clone()))
        .collect();
    let observations = system.observations.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DEPTH_SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            for (queue, url) in &queues {
                // A failed sample (the engine stopping) leaves a gap in the chart.
                if let Ok(depth) = depth(&sqs, url).await {
                    observations.push(Observation::Depth { queue, depth }).await;
                }
            }
        }
    })
}

/// One provisioned topology with the system running on it, for playing many workloads
/// (the fuzzer): provisioned once, each workload played under its own key prefix, torn
/// down by [`Session::stop`].
pub struct Session<'e> {
    engine: &'e Engine,
    clients: Clients,
    spec: TopologySpec,
    suffix: String,
    lag_budget: f64,
    pub system: RunningSystem,
}

/// What the invariants found over a group of workloads played together.
pub struct Checked {
    /// Per workload: the violations about its versions.
    pub workloads: Vec<Vec<invariants::Violation>>,
    /// About the whole system (queues, dead letters).
    pub system: Vec<invariants::Violation>,
}

impl<'e> Session<'e> {
    /// Provisions the topology on `engine` with timing `profile` and starts the system.
    pub async fn start(
        engine: &'e Engine,
        spec: &TopologySpec,
        profile: &str,
    ) -> Result<Session<'e>, ScenarioError> {
        let timing = spec
            .profile(profile)
            .cloned()
            .ok_or_else(|| ScenarioError::Other(format!("unknown profile {profile:?}")))?;
        let lag_budget = timing.lag_budget_seconds;
        let caps = engine.capabilities();
        let clients = engine
            .clients(&spec.primary_region, &spec.replica_region)
            .await;
        let suffix = new_suffix();
        let (topology, _report, mode) = provision_for_engine(
            &clients,
            spec,
            &suffix,
            timing,
            &caps,
            crate::topology::provision::Via::Direct,
        )
        .await?;
        let system = RunningSystem::start(
            clients.clone(),
            caps,
            topology,
            mode,
            &SystemOptions::default(),
        )
        .await
        .map_err(|e| ScenarioError::Other(format!("starting the fidelity layer: {e}")))?;
        Ok(Session {
            engine,
            clients,
            spec: spec.clone(),
            suffix,
            lag_budget,
            system,
        })
    }

    /// Where the observation log stands: check from here after playing.
    pub async fn mark(&self) -> usize {
        self.system.observations.len().await
    }

    /// Plays a scenario's steps (no settling, no checks); answers what the harness knows
    /// of the versions it uploaded.
    pub async fn play(&self, scenario: &Scenario) -> Result<Vec<UploadTruth>, ScenarioError> {
        let mut agent = AgentSession::new(&self.clients, &self.system.topology, &scenario.agent)
            .map_err(|e| {
                ScenarioError::Other(format!("creating the agent's work directory: {e}"))
            })?;
        let mut truths = Truths::new(&self.spec, self.lag_budget);
        let played = tokio::select! {
            r = play(&self.system, self.engine, scenario, &mut agent, &mut truths) => r,
            why = self.engine.watch() => Err(ScenarioError::EngineExited(why)),
        };
        agent.cleanup();
        played?;
        truths.finish(scenario);
        Ok(truths.uploads)
    }

    /// Waits until the system is quiet, then checks the invariants on what was observed
    /// since `from`: each workload's versions, and once the queues and dead letters.
    pub async fn check(
        &self,
        from: usize,
        workloads: &[Vec<UploadTruth>],
    ) -> Result<Checked, ScenarioError> {
        tokio::select! {
            r = settle(&self.system, Duration::from_secs(180)) => r,
            why = self.engine.watch() => Err(why),
        }
        .map_err(|e| ScenarioError::Other(format!("the system did not settle: {e}")))?;
        if let Some(p) = &self.system.proxy {
            p.disarm_faults().await;
        }
        let (_, obs) = self.system.observations.since(from).await;
        let mut depths = Vec::new();
        for (role, q) in self.system.topology.queues.all() {
            depths.push((
                role,
                depth(&self.system.clients.sqs, &q.url)
                    .await
                    .map_err(ScenarioError::Other)?,
            ));
        }
        let facts = |uploads, depths| invariants::RunFacts {
            uploads,
            observations: &obs,
            depths,
            deep_verify: false,
            alert_on_unverifiable: true,
        };
        Ok(Checked {
            workloads: workloads
                .iter()
                .map(|u| {
                    let mut v = invariants::check(&facts(u, &[]));
                    v.retain(|v| !v.invariant.is_system_wide());
                    v
                })
                .collect(),
            system: invariants::check(&facts(&[], &depths)),
        })
    }

    /// API faults that fired so far, counted by service, operation and effect.
    pub async fn faults_fired(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        if let Some(p) = &self.system.proxy {
            for (spec, firings) in p.fault_report().await {
                if !firings.is_empty() {
                    *out.entry(format!(
                        "{:?} {} {:?}",
                        spec.service,
                        spec.operation.as_deref().unwrap_or("*"),
                        spec.effect
                    ))
                    .or_insert(0) += firings.len();
                }
            }
        }
        out
    }

    /// Stops the system and tears the topology down.
    pub async fn stop(self) {
        self.system.stop().await;
        if self.engine.exited().is_none() {
            let report = teardown(&self.clients, &self.spec, &self.suffix).await;
            for p in report.problems {
                tracing::warn!("teardown: {p}");
            }
        }
    }
}
