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
            .filter(|s| s.status == Status::Created)
            .count()
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
