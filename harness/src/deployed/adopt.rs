//! `--functions deployed --via cloudformation`: the functions and event source mappings the
//! primary stack made from the zips in `ArtifactBucket`, adopted as the run's
//! [`Deployment`]. What runs is then the template's own functions: its role, timeout, memory,
//! environment and mappings (batch size, batching window, `ReportBatchItemFailures`), not a
//! second description of them.
//!
//! The run adds to each function's environment only what the template leaves unset:
//! - what the local world needs: `AWS_ENDPOINT_URL` (the fidelity layer; on AWS the SDK
//!   resolves each service's regional endpoint, "Service-specific endpoints", AWS SDKs and
//!   Tools Reference Guide), `S3_FORCE_PATH_STYLE` (the engines serve path-style requests),
//!   `RUST_LOG` (the decision lines the follower reads);
//! - the run's own settings where the template keeps the functions' defaults (a scenario's
//!   deep mode, `ALERT_ON_UNVERIFIABLE`, a short profile's deadline margin and claim period).
//!
//! Each added variable is logged. A variable the template sets to another value than the
//! run's configuration is drift and refused with both values ([`DeployError::Drift`]): the
//! gate would otherwise play a configuration that is not the deployed one. A `--function-env`
//! override is the user's explicit choice and wins over both.
//!
//! Floor 4 (a room of `deployed`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_lambda::types::{Environment, LastUpdateStatus};

use super::{
    notifier_env, validator_env, with_runtime, DeployError, DeploySpec, Deployment, EnvOverride,
    Waited,
};
use crate::topology::{FunctionName, Topology};

/// The environment a stack's function runs with in this run, and the names the run added.
pub(super) fn run_environment(
    function: FunctionName,
    name: &str,
    deployed: &BTreeMap<String, String>,
    run: BTreeMap<String, String>,
    overrides: &[EnvOverride],
) -> Result<(BTreeMap<String, String>, Vec<String>), DeployError> {
    let mut env = deployed.clone();
    let mut added = Vec::new();
    for (k, v) in run {
        if overrides
            .iter()
            .any(|o| o.function == function && o.name == k)
        {
            continue;
        }
        match deployed.get(&k) {
            Some(d) if same_value(d, &v) => {}
            Some(d) => {
                return Err(DeployError::Drift {
                    function: name.to_string(),
                    name: k,
                    deployed: d.clone(),
                    run: v,
                })
            }
            None => {
                added.push(k.clone());
                env.insert(k, v);
            }
        }
    }
    for o in overrides.iter().filter(|o| o.function == function) {
        env.insert(o.name.clone(), o.value.clone());
    }
    Ok((env, added))
}

/// Equal as text, or as numbers (`2` and `2.0` are the same number of seconds).
fn same_value(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (a.trim().parse::<f64>(), b.trim().parse::<f64>()),
            (Ok(x), Ok(y)) if x == y
        )
}

impl Deployment {
    /// Adopts the functions and mappings of the primary stack (`topology.functions_in_stack`):
    /// sets the run's additions on their environment (see the module docs), waits for the
    /// update, and finds the five mappings by their queues.
    pub async fn adopt(
        sdk: &aws_config::SdkConfig,
        topology: &Topology,
        spec: &DeploySpec<'_>,
    ) -> Result<Deployment, DeployError> {
        let mut d = Deployment::empty(sdk, topology, false);
        for (function, base) in [
            (FunctionName::Validator, validator_env(spec.validator)),
            (FunctionName::Notifier, notifier_env(spec.notifier)),
        ] {
            let name = d.names[&function].clone();
            let conf = d
                .lambda
                .get_function_configuration()
                .function_name(&name)
                .send()
                .await
                .map_err(|e| DeployError::aws(format!("GetFunctionConfiguration {name}"), e))?;
            let deployed: BTreeMap<String, String> = conf
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let run = with_runtime(base, spec);
            let (env, added) = run_environment(function, &name, &deployed, run, spec.overrides)?;
            tracing::info!(function = %name, added = %added.join(","), "the stack's function: the run's additions to its environment");
            d.lambda
                .update_function_configuration()
                .function_name(&name)
                .environment(
                    Environment::builder()
                        .set_variables(Some(env.into_iter().collect::<HashMap<_, _>>()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| DeployError::aws(format!("UpdateFunctionConfiguration {name}"), e))?;
            d.wait_updated(&name).await?;
        }
        if spec.mappings {
            d.find_mappings(topology).await?;
        }
        Ok(d)
    }

    /// Waits until an update of `name`'s configuration is done (`LastUpdateStatus`, which
    /// AWS reports `InProgress` while it applies one: Lambda Developer Guide, "Lambda
    /// function states").
    async fn wait_updated(&self, name: &str) -> Result<(), DeployError> {
        self.wait_configuration(name, |c| match c.last_update_status() {
            None | Some(LastUpdateStatus::Successful) => Waited::Done,
            Some(LastUpdateStatus::Failed) => Waited::Failed(DeployError::Aws {
                call: format!("UpdateFunctionConfiguration {name}"),
                why: c
                    .last_update_status_reason()
                    .unwrap_or("the update failed")
                    .to_string(),
            }),
            Some(other) => Waited::Pending(format!("LastUpdateStatus {other:?}")),
        })
        .await
    }

    /// The stack's mapping of each (function, queue) the topology names.
    async fn find_mappings(&mut self, topology: &Topology) -> Result<(), DeployError> {
        for (function, role) in crate::topology::MAPPINGS {
            let name = self.names[&function].clone();
            let missing = |why: String| DeployError::Aws {
                call: format!("ListEventSourceMappings {name}"),
                why,
            };
            let queue = topology
                .queues
                .by_role(role)
                .ok_or_else(|| missing(format!("the topology has no {role} queue")))?;
            let out = self
                .lambda
                .list_event_source_mappings()
                .function_name(&name)
                .event_source_arn(&queue.arn)
                .send()
                .await
                .map_err(|e| DeployError::aws(format!("ListEventSourceMappings {name}"), e))?;
            let uuid = out
                .event_source_mappings()
                .iter()
                .find(|m| m.event_source_arn() == Some(queue.arn.as_str()))
                .and_then(|m| m.uuid())
                .ok_or_else(|| {
                    missing(format!(
                        "the stack made no mapping of the {role} queue ({}) to {name}",
                        queue.arn
                    ))
                })?;
            self.mappings
                .push((function, role.to_string(), uuid.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_run_adds_only_what_the_stack_leaves_unset() {
        let deployed = env(&[("LAG_BUDGET_SECONDS", "2"), ("REPLICA_BUCKET_MAP", "a=b")]);
        let run = env(&[
            ("LAG_BUDGET_SECONDS", "2.0"),
            ("DEEP_VERIFY", "true"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ]);
        let (got, added) =
            run_environment(FunctionName::Validator, "v", &deployed, run, &[]).expect("no drift");
        assert_eq!(added, ["AWS_ENDPOINT_URL", "DEEP_VERIFY"]);
        assert_eq!(got["LAG_BUDGET_SECONDS"], "2", "the stack's value stays");
        assert_eq!(
            got["REPLICA_BUCKET_MAP"], "a=b",
            "what only the stack sets stays"
        );
        assert_eq!(got["DEEP_VERIFY"], "true");
    }

    #[test]
    fn a_value_the_stack_sets_otherwise_is_drift() {
        let deployed = env(&[("MAX_RECEIVE_COUNT", "5")]);
        let run = env(&[("MAX_RECEIVE_COUNT", "3")]);
        let Err(e) = run_environment(FunctionName::Validator, "v", &deployed, run, &[]) else {
            panic!("drift must be refused");
        };
        let text = e.to_string();
        assert!(
            matches!(e, DeployError::Drift { .. })
                && text.contains("MAX_RECEIVE_COUNT=\"5\"")
                && text.contains("MAX_RECEIVE_COUNT=\"3\""),
            "{text}"
        );
    }

    #[test]
    fn an_override_wins_over_the_stack_and_the_run() {
        let deployed = env(&[("SNS_TOPIC_ARN", "arn:a")]);
        let run = env(&[("SNS_TOPIC_ARN", "arn:b")]);
        let overrides = [
            "notifier:SNS_TOPIC_ARN=arn:c"
                .parse::<EnvOverride>()
                .unwrap(),
            "validator:SNS_TOPIC_ARN=arn:d"
                .parse::<EnvOverride>()
                .unwrap(),
        ];
        let (got, added) = run_environment(FunctionName::Notifier, "n", &deployed, run, &overrides)
            .expect("the override settles it");
        assert_eq!(got["SNS_TOPIC_ARN"], "arn:c");
        assert!(added.is_empty());
    }
}
