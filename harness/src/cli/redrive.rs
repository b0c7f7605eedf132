//! `harness redrive`: the seed runbook's DLQ redrive.

use std::path::PathBuf;

use clap::Args;

use crate::engine::EngineKind;
use crate::topology::{Names, QueueRef, TopologySpec};

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Run suffix of the topology (default: the one of the running `harness up`).
    #[arg(long)]
    pub suffix: Option<String>,
    /// Queue to empty: validation-dlq, failure-dlq, validation or failure.
    #[arg(long, default_value = "validation-dlq")]
    pub from: String,
    /// Queue to move the messages to.
    #[arg(long, default_value = "failure")]
    pub to: String,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

fn queue_name(names: &Names, role: &str) -> anyhow::Result<String> {
    Ok(match role {
        "validation" => names.validation_queue.clone(),
        "validation-dlq" => names.validation_dlq.clone(),
        "failure" => names.failure_queue.clone(),
        "failure-dlq" => names.failure_dlq.clone(),
        other => anyhow::bail!(
            "unknown queue {other:?}: one of validation, validation-dlq, failure, failure-dlq"
        ),
    })
}

impl RedriveArgs {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        let spec = TopologySpec::load(&self.topology)?;
        let engine = super::common::running_engine(kind).await?;
        let clients = engine
            .clients(&spec.primary_region, &spec.replica_region)
            .await;
        let suffix = match self.suffix.clone().or_else(|| super::common::live(kind).map(|s| s.suffix)) {
            Some(s) => s,
            None => anyhow::bail!(
                "no --suffix given and no `harness up` runs for {kind}: pass the suffix `provision` printed"
            ),
        };
        let names = Names::new(&spec, &suffix);
        let mut refs = Vec::new();
        for role in [&self.from, &self.to] {
            let name = queue_name(&names, role)?;
            let url = clients
                .sqs
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("queue {name}: {}", crate::errors::sdk(e)))?
                .queue_url()
                .unwrap_or_default()
                .to_string();
            let arn = clients
                .sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("queue {name}: {}", crate::errors::sdk(e)))?
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                        .cloned()
                })
                .unwrap_or_default();
            refs.push(QueueRef { name, url, arn });
        }
        let moved =
            crate::redrive::redrive(&clients.sqs, &engine.capabilities(), &refs[0], &refs[1])
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
        println!(
            "moved {moved} message(s) from {} to {}",
            refs[0].name, refs[1].name
        );
        Ok(0)
    }
}
