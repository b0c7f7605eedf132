//! `harness invoke validator|notifier --event FILE`: one event sent to the real binary
//! through the engine's Invoke API, its response printed.
//!
//! It provisions a topology of its own (the `fast` profile unless told), creates the two
//! functions from the x86_64 zips as `--functions deployed` does (without event source
//! mappings), invokes one, prints the response and the function's log, and removes
//! everything. The event file is either an SQS event (an object with `Records`, such as
//! AWS's documented sample) or one message body (an S3 EventBridge event from
//! `fixtures/engine-events/`, a failure record, ...), which is wrapped into a one-record SQS
//! event from the function's queue.

use std::path::PathBuf;

use clap::Args;

use crate::aws::Clients;
use crate::deployed::DeployError;
use crate::deployed::{self, DeploySpec, Deployment};
use crate::engine::{Engine, EngineKind};
use crate::fidelity::proxy::GapProxy;
use crate::system::{self, SystemOptions};
use crate::topology::FunctionName;
use crate::topology::{
    new_suffix, provision::provision_for_engine, teardown, Timing, Topology, TopologySpec,
};

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function to invoke.
    #[arg(value_enum)]
    pub function: FunctionName,
    /// The event: an SQS event (JSON with `Records`) or one message body.
    #[arg(long)]
    pub event: PathBuf,
    /// Timing profile of the topology the function is configured for.
    #[arg(long, default_value = "fast")]
    pub profile: String,
}

/// The SQS event for `text`: as is when it is one (has `Records`), else a one-record event
/// from `queue_arn` with `text` as the body.
pub fn sqs_event(text: &str, queue_arn: &str, region: &str) -> serde_json::Value {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if v.get("Records").is_some_and(|r| r.is_array()) {
            return v;
        }
    }
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let id: String = (0..32)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect();
    serde_json::json!({"Records": [{
        "messageId": format!("{}-{}-{}-{}-{}", &id[0..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]),
        "receiptHandle": "harness-invoke",
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now,
            "SenderId": "harness",
            "ApproximateFirstReceiveTimestamp": now,
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }]})
}

/// What one invocation answered, with the function's log lines.
#[derive(Debug, Clone)]
pub struct InvokeOutcome {
    pub function: String,
    pub invoked: deployed::Invoked,
    pub log: Vec<String>,
}

/// Provisions a topology on `engine`, creates both functions, invokes `function` once with
/// the event `text` (see [`sqs_event`]), and removes everything again.
pub async fn invoke_on(
    engine: &Engine,
    spec: &TopologySpec,
    timing: Timing,
    function: FunctionName,
    text: &str,
) -> Result<InvokeOutcome, DeployError> {
    deployed::check_engine(engine)?;
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let suffix = new_suffix();
    let provisioned = provision_for_engine(
        &clients,
        spec,
        &suffix,
        timing,
        &engine.capabilities(),
        crate::topology::provision::Via::Direct,
    )
    .await;
    let result = match provisioned {
        Ok((topology, _, _)) => invoke_in(&clients, &topology, function, text).await,
        Err(e) => Err(DeployError::Aws {
            call: "provisioning the topology".into(),
            why: e.to_string(),
        }),
    };
    let report = teardown::teardown(&clients, spec, &suffix).await;
    for p in report.problems {
        tracing::warn!("teardown: {p}");
    }
    result
}

async fn invoke_in(
    clients: &Clients,
    topology: &Topology,
    function: FunctionName,
    text: &str,
) -> Result<InvokeOutcome, DeployError> {
    let proxy = GapProxy::start(&clients.endpoint).await?;
    let opts = SystemOptions::default();
    let d = Deployment::create(
        &clients.sdk,
        topology,
        &DeploySpec {
            validator: &system::validator_config(topology, &opts),
            notifier: &system::notifier_config(topology, &opts),
            endpoint: &proxy.endpoint,
            overrides: &[],
            mappings: false,
        },
    )
    .await?;
    let queue = match function {
        FunctionName::Validator => &topology.queues.validation,
        FunctionName::Notifier => &topology.queues.failure,
    };
    let event = sqs_event(text, &queue.arn, &topology.primary_region);
    let invoked = d
        .invoke(
            function,
            serde_json::to_vec(&event).map_err(std::io::Error::other)?,
        )
        .await;
    // The engine writes an invocation's log when it ends: give the read a moment.
    let mut log = Vec::new();
    for _ in 0..20 {
        log = d.log_lines(function).await;
        if log.iter().any(|l| l.starts_with("REPORT")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let name = d.name(function).to_string();
    d.delete().await;
    Ok(InvokeOutcome {
        function: name,
        invoked: invoked?,
        log,
    })
}

impl InvokeArgs {
    /// 0 when the function answered, 1 when it failed (`X-Amz-Function-Error`), 2 when it
    /// could not be invoked.
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        deployed::check_kind(kind)?;
        crate::package::locate(crate::package::Arch::X86_64)?;
        let text = std::fs::read_to_string(&self.event)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", self.event.display()))?;
        let spec = TopologySpec::load(&TopologySpec::default_path())?;
        let timing = spec
            .profile(&self.profile)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown profile {:?}", self.profile))?;
        let engine = super::common::start_engine(
            kind,
            crate::deployed::FunctionsMode::Deployed,
            crate::topology::provision::Via::Direct,
        )
        .await?;
        let out = invoke_on(&engine, &spec, timing, self.function, &text).await?;
        println!("function: {}", out.function);
        println!("status: {}", out.invoked.status);
        if let Some(e) = &out.invoked.function_error {
            println!("function error: {e}");
        }
        println!("response: {}", out.invoked.payload);
        println!("log:");
        for line in &out.log {
            println!("  {line}");
        }
        Ok(if out.invoked.function_error.is_some() {
            1
        } else {
            0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_wrapped_an_sqs_event_is_kept() {
        let body = include_str!("../../../fixtures/engine-events/ministack-1.5.33-event-1.json");
        let e = sqs_event(body, "arn:aws:sqs:us-east-1:000000000000:q", "us-east-1");
        let r = &e["Records"][0];
        assert_eq!(r["body"].as_str(), Some(body));
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:000000000000:q");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        let parsed: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_value(e).expect("an SqsEvent");
        assert_eq!(parsed.records.len(), 1);
        let sample = include_str!("../../../fixtures/events/sqs-standard-queue.json");
        let kept = sqs_event(sample, "unused", "us-east-1");
        assert_eq!(
            kept,
            serde_json::from_str::<serde_json::Value>(sample).unwrap()
        );
    }
}
