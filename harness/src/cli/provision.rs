//! `harness provision` and `harness teardown`.

use std::path::PathBuf;

use clap::Args;

use crate::engine::EngineKind;
use crate::topology::provision::{provision_for_engine, Via};
use crate::topology::{new_suffix, teardown::teardown, TopologySpec};

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Run suffix of every name (random when omitted). Provisioning the same suffix again
    /// changes nothing and succeeds.
    #[arg(long)]
    pub suffix: Option<String>,
    /// Timing profile from the topology file: `seed` (the seed's real timings) or `fast`.
    #[arg(long, default_value = "seed")]
    pub profile: String,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
    /// Print the provisioned topology as JSON on stdout instead of the report.
    #[arg(long)]
    pub json: bool,
    /// How the topology is provisioned: `direct` (the harness's SDK calls) or
    /// `cloudformation` (the templates of deploy/cloudformation/ with CreateStack; what the
    /// engine's CloudFormation does not apply is filled by direct calls, named in the output).
    #[arg(long, value_enum, default_value_t = Via::Direct, env = "HARNESS_VIA")]
    pub via: Via,
}

impl ProvisionArgs {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        let spec = TopologySpec::load(&self.topology)?;
        let Some(timing) = spec.profile(&self.profile).cloned() else {
            anyhow::bail!(
                "unknown profile {:?} (profiles in {}: {})",
                self.profile,
                self.topology.display(),
                spec.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let engine = super::common::running_engine(kind).await?;
        if self.via == Via::Cloudformation {
            crate::topology::provision::stack::check_engine(&engine)?;
        }
        let clients = engine
            .clients(&spec.primary_region, &spec.replica_region)
            .await;
        let suffix = self.suffix.unwrap_or_else(new_suffix);
        let (topology, report, mode) = provision_for_engine(
            &clients,
            &spec,
            &suffix,
            timing,
            &engine.capabilities(),
            self.via,
        )
        .await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&topology)?);
        } else {
            println!(
                "provisioned topology `{suffix}` on {} at {}:",
                engine.kind, engine.endpoint
            );
            print!("{}", report.render());
            println!("replication: {mode}");
            println!("provisioned via: {}", self.via);
            for f in report.filled() {
                println!("  filled by the harness: {f}");
            }
            println!("remove it with: harness --engine {kind} teardown --suffix {suffix}");
        }
        Ok(0)
    }
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Run suffix printed by `provision`.
    #[arg(long)]
    pub suffix: String,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

impl TeardownArgs {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        let spec = TopologySpec::load(&self.topology)?;
        let engine = super::common::running_engine(kind).await?;
        let clients = engine
            .clients(&spec.primary_region, &spec.replica_region)
            .await;
        let report = teardown(&clients, &spec, &self.suffix).await;
        for r in &report.removed {
            println!("  removed {r}");
        }
        for p in &report.problems {
            eprintln!("  problem: {p}");
        }
        println!(
            "removed {} resources in {:.2}s",
            report.removed.len(),
            report.total.as_secs_f64()
        );
        Ok(if report.problems.is_empty() { 0 } else { 1 })
    }
}
