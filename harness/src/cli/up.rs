//! `harness up`, `harness status`, `harness alerts`.

use std::path::PathBuf;

use crate::topology::provision::Via;
use clap::Args;

use crate::aws::Clients;
use crate::engine::EngineKind;
use crate::scenario::transcript::depth;
use crate::system::{RunningSystem, SystemOptions};
use crate::topology::provision::provision_for_engine;
use crate::topology::replication;
use crate::topology::{new_suffix, teardown::teardown, TopologySpec};
use crate::up::{self, AlertLine, DecisionLine, UpState};

/// Observations `harness up` keeps in memory. Only its console follower reads them, as they
/// arrive (every 100 ms); decisions and alerts also go to their files, which `status` and
/// `alerts` read. 2,000 covers a burst of several hundred objects between two reads, and
/// holds about 3 MiB (a decision with its evidence is about 1.5 KiB).
pub const UP_OBSERVATIONS: usize = 2_000;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Timing profile: `fast` (2 s visibility, 1 s retries) or `seed` (the seed's 300 s).
    #[arg(long, default_value = "fast")]
    pub profile: String,
    /// Also write everything a client needs (endpoint, credentials, buckets, queues, topic)
    /// as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Leave the topology in place on exit.
    #[arg(long)]
    pub keep: bool,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
    /// How the topology is provisioned: `direct` (the harness's SDK calls) or
    /// `cloudformation` (the templates of deploy/cloudformation/ with CreateStack; what the
    /// engine's CloudFormation does not apply is filled by direct calls, named in the output).
    #[arg(long, value_enum, default_value_t = Via::Direct, env = "HARNESS_VIA")]
    pub via: Via,
}

impl UpArgs {
    pub async fn run(self, kind: EngineKind, json_logs: bool) -> anyhow::Result<i32> {
        let claim = match up::claim(kind.name()) {
            Ok(c) => c,
            Err(e @ up::ClaimError::Held { .. }) => {
                let who = up::read_live(kind.name())
                    .map(|st| {
                        format!(
                            " (pid {}, endpoint {}, suffix {})",
                            st.pid, st.endpoint, st.suffix
                        )
                    })
                    .unwrap_or_default();
                eprintln!(
                    "error: {e}{who}.\n\
                     Use it (`harness --engine {kind} status`, `harness --engine {kind} alerts`) or stop it with Ctrl-C in its terminal."
                );
                return Ok(1);
            }
            Err(e) => return Err(e.into()),
        };
        let spec = TopologySpec::load(&self.topology)?;
        let Some(timing) = spec.profile(&self.profile).cloned() else {
            anyhow::bail!(
                "unknown profile {:?}: choose {}",
                self.profile,
                spec.profiles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
        };
        eprintln!("harness: starting {kind} ...");
        let engine =
            super::common::start_engine(kind, crate::deployed::FunctionsMode::InProcess, self.via)
                .await?;
        if self.via == Via::Cloudformation {
            crate::topology::provision::stack::check_engine(&engine)?;
        }
        let caps = engine.capabilities();
        let clients = engine
            .clients(&spec.primary_region, &spec.replica_region)
            .await;
        let suffix = new_suffix();
        let (topology, report, mode) =
            provision_for_engine(&clients, &spec, &suffix, timing, &caps, self.via).await?;
        eprintln!(
            "harness: provisioned {} resources in {:.2}s",
            report.steps.len(),
            report.total.as_secs_f64()
        );
        let system = RunningSystem::start(
            clients.clone(),
            caps,
            topology.clone(),
            mode.clone(),
            &SystemOptions {
                observation_cap: Some(UP_OBSERVATIONS),
                history_dir: Some(up::dir(kind.name())),
                ..SystemOptions::default()
            },
        )
        .await?;
        let clients_endpoint = system
            .proxy
            .as_ref()
            .map(|p| p.endpoint.clone())
            .unwrap_or_else(|| engine.endpoint.clone());
        let state = UpState::new(
            &topology,
            kind.name(),
            &clients_endpoint,
            &engine.endpoint,
            engine.pid(),
            &self.profile,
            &match &mode {
                replication::ReplicationMode::Native => "native".to_string(),
                replication::ReplicationMode::Emulated(_) => "emulated by the harness".to_string(),
            },
        );
        up::write(&state, &claim)?;
        if let Some(path) = &self.json {
            crate::paths::write_private(path, &serde_json::to_vec_pretty(&state)?)?;
        }
        print!("{}", state.render());
        println!("ready: press Ctrl-C to stop (everything this started stops with it)");
        let follower = tokio::spawn(up::follow(
            system.observations.clone(),
            kind.name().to_string(),
            json_logs,
        ));

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // Finding 23 (partial): an engine that dies ends `up` at once, with its log, instead
        // of a system that answers "connection refused" to every client until Ctrl-C.
        let engine_died = tokio::select! {
            _ = tokio::signal::ctrl_c() => None,
            _ = term.recv() => None,
            why = engine.watch() => Some(why),
        };
        if let Some(why) = &engine_died {
            eprintln!("harness up: {why}");
        }
        println!("stopping ...");
        follower.abort();
        system.stop().await;
        if engine_died.is_some() {
            up::remove(kind.name());
            return Ok(2);
        }
        if !self.keep {
            let t = teardown(&clients, &spec, &suffix).await;
            println!("removed {} resources", t.removed.len());
        } else {
            println!("topology kept: suffix {suffix}");
        }
        up::remove(kind.name());
        drop(engine);
        println!("stopped");
        Ok(0)
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// How many of the last decisions to show.
    #[arg(long, default_value_t = 10)]
    pub last: usize,
}

impl StatusArgs {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        let Some(st) = up::read_live(kind.name()) else {
            println!(
                "no `harness up` runs for {kind}: start one with `harness --engine {kind} up`"
            );
            return Ok(1);
        };
        println!(
            "harness up (pid {}) on {} at {}, topology {}, profile {}",
            st.pid, st.engine, st.endpoint, st.suffix, st.profile
        );
        let clients =
            Clients::for_endpoint(&st.endpoint, kind, &st.primary_region, &st.replica_region).await;
        println!("queues (visible / in flight / delayed):");
        for q in &st.queues {
            match depth(&clients.sqs, &q.url).await {
                Ok(d) => println!(
                    "  {:<15} {} / {} / {}",
                    q.role, d.visible, d.in_flight, d.delayed
                ),
                Err(e) => println!("  {:<15} unavailable: {e}", q.role),
            }
        }
        let decisions: Vec<DecisionLine> = up::read_lines(kind.name(), "decisions.jsonl");
        println!("last decisions ({} in all):", decisions.len());
        for d in decisions.iter().rev().take(self.last).rev() {
            println!(
                "  {:<19} {} attempt {}: {}",
                d.outcome, d.object, d.attempt, d.detail
            );
        }
        let alerts: Vec<AlertLine> = up::read_lines(kind.name(), "alerts.jsonl");
        println!("alerts received: {}", alerts.len());
        for a in alerts.iter().rev().take(self.last).rev() {
            println!("  {}", a.subject);
        }
        Ok(0)
    }
}

#[derive(Debug, Args)]
pub struct AlertsArgs {}

impl AlertsArgs {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        if up::read_live(kind.name()).is_none() {
            println!(
                "no `harness up` runs for {kind}: start one with `harness --engine {kind} up`"
            );
            return Ok(1);
        }
        let alerts: Vec<AlertLine> = up::read_lines(kind.name(), "alerts.jsonl");
        println!("{} alert(s) received", alerts.len());
        for (i, a) in alerts.iter().enumerate() {
            println!(
                "\n#{} subject: {}\n{}",
                i + 1,
                a.subject,
                a.message.trim_end()
            );
        }
        Ok(0)
    }
}
