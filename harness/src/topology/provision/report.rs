//! What provisioning did: each resource created or found, and how long it took.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::ProvisionError;

/// What provisioning did to one resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Exists,
    /// Made by a CloudFormation stack (`--via cloudformation`).
    Stack,
    /// A setting the engine's CloudFormation accepted but did not apply, applied by a direct
    /// call (`engine/gaps.rs`).
    Filled,
}

/// One line of the provisioning report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub resource: String,
    pub status: Status,
    pub millis: u128,
}

/// What provisioning did, and how long it took.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProvisionReport {
    pub steps: Vec<StepReport>,
    pub total: Duration,
}

impl ProvisionReport {
    pub fn created(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status != Status::Exists)
            .count()
    }

    /// The settings filled by direct calls after the stacks (empty on the direct path).
    pub fn filled(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.status == Status::Filled)
            .map(|s| s.resource.as_str())
            .collect()
    }

    /// A readable summary, one line per resource.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for st in &self.steps {
            s.push_str(&format!(
                "  {:<8} {:<70} {:>5} ms\n",
                match st.status {
                    Status::Created => "created",
                    Status::Exists => "exists",
                    Status::Stack => "stack",
                    Status::Filled => "filled",
                },
                st.resource,
                st.millis
            ));
        }
        s.push_str(&format!(
            "  {} resources ({} created, {} already there) in {:.2}s\n",
            self.steps.len(),
            self.created(),
            self.steps.len() - self.created(),
            self.total.as_secs_f64()
        ));
        s
    }
}

pub(super) type Log = Mutex<Vec<StepReport>>;

pub(super) async fn record(log: &Log, resource: String, status: Status, started: Instant) {
    log.lock().await.push(StepReport {
        resource,
        status,
        millis: started.elapsed().as_millis(),
    });
}

pub(super) fn fail(step: &str) -> impl Fn(String) -> ProvisionError + '_ {
    move |why| ProvisionError::new(step, why)
}
