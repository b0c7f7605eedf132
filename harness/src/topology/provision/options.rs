//! How to provision: the options of one provisioning, and which path it takes.

use super::super::Timing;

/// How to provision.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub timing: Timing,
    /// Put the replication configuration on the primaries (off when the harness replicator
    /// stands in for an engine's native replication).
    pub replication_on_engine: bool,
    /// Direct SDK calls or the CloudFormation templates.
    pub via: Via,
    /// With `Via::Cloudformation`: what goes into the stacks besides the topology.
    pub stack: StackInputs,
}

/// What a `Via::Cloudformation` run puts into its stacks besides the topology.
#[derive(Debug, Clone, Default)]
pub struct StackInputs {
    /// Template bodies (replica, primary) of the caller's instead of the ones generated from
    /// the spec (a team's edited copy, a test's broken one).
    pub templates: Option<[String; 2]>,
    /// Deploy the functions and their mappings in the primary stack (the x86_64 zips
    /// uploaded to the run's `ArtifactBucket`), for `--functions deployed`.
    pub functions: bool,
}

/// Which provisioning path a run takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The harness's own SDK calls, resource by resource.
    #[default]
    Direct,
    /// The CloudFormation templates (`deploy/cloudformation/`), with CreateStack.
    Cloudformation,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::Direct => "direct",
            Via::Cloudformation => "cloudformation",
        })
    }
}
