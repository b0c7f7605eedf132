//! `--functions deployed`: the packaged `bootstrap` binaries ([`crate::package`]) run by
//! the engine's own Lambda service behind the engine's own SQS event source mappings, instead
//! of the handlers' library code under the harness's mapping ([`crate::esm`]).
//!
//! [`Deployment::create`] makes what a Terraform deploy of the seed makes: both functions
//! from the x86_64 zips (`provided.al2023`, handler `bootstrap`, the profile's timeout, the
//! topology's memory, the roles from the topology, the environment variables of
//! [`validator_env`] and [`notifier_env`]), and one mapping per queue the in-process system
//! consumes (the validator on the validation queue; the notifier on the failure queue, the
//! validation DLQ, the EventBridge DLQ and the failure DLQ), each with the topology's batch
//! size, `MaximumBatchingWindowInSeconds` and `FunctionResponseTypes =
//! ["ReportBatchItemFailures"]`. The functions reach AWS through the fidelity layer exactly
//! as the in-process ones do: `AWS_ENDPOINT_URL` (which the SDK honours, "Service-specific
//! endpoints", AWS SDKs and Tools Reference Guide) is the layer's endpoint; nothing in
//! `functions/` knows about it.
//!
//! With `--via cloudformation` the primary stack makes both functions and their mappings
//! from the run's zips instead, and [`Deployment::adopt`] takes them over (`adopt.rs`): what
//! runs is the template's own functions.
//!
//! **What they decided** is read back from their structured logs in CloudWatch Logs
//! (`FilterLogEvents` on `/aws/lambda/<name>`, where the engine writes each invocation's
//! output): every `record decided` / `record notified` line carries its whole report, every
//! `batch answered` line the batch's size and batch item failures. [`Deployment::follow`]
//! turns them into the same [`Observation`]s the in-process mapping records, so the
//! transcript is the same. That the logs exist at all proves the code ran (an engine's
//! Lambda that only mocks functions writes none of them). A function that cannot start
//! logs `invalid configuration`; the follower reports it and the run fails at once with it.
//!
//! Where the engine's mapping is not AWS's, `engine::gaps` says so.
//!
//! Floor 4: may import floors 0-3 (ground, engine, topology, fidelity).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, FunctionResponseType, LogType, Runtime, State,
};
use checksum_validator::{RecordReport, ValidatorConfig};
use failure_notifier::{NotifierConfig, NotifyReport};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Engine, EngineKind, Flavor};
use crate::fidelity::replicator::Replicator;
use crate::observe::{Observation, Observations};
use crate::package::PackageError;
use crate::package::{self, Arch};
use crate::topology::FunctionName;
use crate::topology::{policy, Topology};

/// Where the functions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FunctionsMode {
    /// The handlers' library code inside the harness, under its event source mapping.
    #[default]
    InProcess,
    /// The packaged `bootstrap` zips, run by the engine's Lambda service and mappings.
    Deployed,
}

/// The engines whose Lambda service runs the zips here.
pub const SUPPORTED_ENGINES: &str = "ministack (its default LAMBDA_EXECUTOR=local runs provided.* functions as local processes speaking the Lambda Runtime API)";

const LOCALSTACK_WHY: &str = "free LocalStack (4.14.0, the last free release) runs Lambda functions only inside Docker containers, and the harness runs it without Lambda";

/// Refuses, before anything starts, an engine kind that cannot run deployed functions.
pub fn check_kind(kind: EngineKind) -> Result<(), DeployError> {
    match kind {
        EngineKind::Localstack => Err(DeployError::Unsupported {
            engine: kind.to_string(),
            why: LOCALSTACK_WHY,
            supported: SUPPORTED_ENGINES,
        }),
        _ => Ok(()),
    }
}

/// Refuses an engine that cannot run deployed functions (by what it was identified as).
pub fn check_engine(engine: &Engine) -> Result<(), DeployError> {
    match engine.flavor {
        Flavor::Ministack if engine.lambda => Ok(()),
        Flavor::Ministack => Err(DeployError::Unsupported {
            engine: engine.kind.to_string(),
            why: "this MiniStack was started without its Lambda service (the harness turns it on only for --functions deployed, since any local client could run code through it as you): let the command start its own, or start it with `engine up --lambda`",
            supported: SUPPORTED_ENGINES,
        }),
        Flavor::Localstack => Err(DeployError::Unsupported {
            engine: engine.kind.to_string(),
            why: LOCALSTACK_WHY,
            supported: SUPPORTED_ENGINES,
        }),
        Flavor::Aws => Err(DeployError::Unsupported {
            engine: engine.kind.to_string(),
            why:
                "it was not identified as an engine known to run provided.al2023 functions locally",
            supported: SUPPORTED_ENGINES,
        }),
    }
}

/// One environment variable set on a deployed function over what the topology gives it
/// (`validator:NAME=VALUE` or `notifier:NAME=VALUE`), e.g. a deliberately wrong one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    pub function: FunctionName,
    pub name: String,
    pub value: String,
}

/// An `--function-env` value that is not `validator|notifier:NAME=VALUE`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not FUNCTION:NAME=VALUE (FUNCTION is validator or notifier)")]
pub struct BadEnvOverride(String);

impl std::str::FromStr for EnvOverride {
    type Err = BadEnvOverride;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEnvOverride(s.to_string());
        let (function, assignment) = s.split_once(':').ok_or_else(bad)?;
        let function = match function {
            "validator" => FunctionName::Validator,
            "notifier" => FunctionName::Notifier,
            _ => return Err(bad()),
        };
        let (name, value) = assignment.split_once('=').ok_or_else(bad)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(bad());
        }
        Ok(EnvOverride {
            function,
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// The validator's Lambda environment for `c` (its documented variables,
/// `checksum_validator::config`): reading it back gives `c`.
pub fn validator_env(c: &ValidatorConfig) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    if let Some(url) = &c.failure_queue_url {
        set("FAILURE_QUEUE_URL", url.clone());
    }
    if let Some(region) = &c.replica_region {
        set("REPLICA_AWS_REGION", region.clone());
    }
    if !c.replica_bucket_map.is_empty() {
        let map: BTreeMap<_, _> = c.replica_bucket_map.iter().collect();
        set(
            "REPLICA_BUCKET_MAP",
            map.iter()
                .map(|(a, b)| format!("{a}={b}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    set("LAG_BUDGET_SECONDS", secs(c.lag_budget));
    set("OVERDUE_CAP_SECONDS", secs(c.overdue_cap));
    set("RETRY_BASE_SECONDS", secs(c.retry_base));
    set("RETRY_MAX_SECONDS", secs(c.retry_max));
    set("MAX_RECEIVE_COUNT", c.max_receive_count.to_string());
    set("ALERT_ON_UNVERIFIABLE", c.alert_on_unverifiable.to_string());
    set("RECORD_CONCURRENCY", c.record_concurrency.to_string());
    set("S3_FORCE_PATH_STYLE", c.force_path_style.to_string());
    set("DEEP_VERIFY", c.deep_verify.to_string());
    set("DEEP_VERIFY_MAX_BYTES", c.deep_verify_max_bytes.to_string());
    set(
        "DEADLINE_MARGIN_MS",
        c.deadline_margin.as_millis().to_string(),
    );
    env
}

/// The notifier's Lambda environment for `c`: reading it back gives `c` (its claim period
/// in whole seconds, as `LEDGER_CLAIM_SECONDS` takes it).
pub fn notifier_env(c: &NotifierConfig) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("SNS_TOPIC_ARN".into(), c.topic_arn.clone());
    env.insert("PROJECT_NAME".into(), c.project.clone());
    if let Some(b) = &c.ledger_bucket {
        env.insert("ALERT_LEDGER_BUCKET".into(), b.clone());
    }
    env.insert(
        "LEDGER_CLAIM_SECONDS".into(),
        c.claim_period.as_secs().max(1).to_string(),
    );
    env.insert("S3_FORCE_PATH_STYLE".into(), c.force_path_style.to_string());
    env
}

/// A function's environment `base` with what every run adds: `AWS_ENDPOINT_URL` (the
/// fidelity layer) and `RUST_LOG` (the decision lines the follower reads).
fn with_runtime(
    mut base: BTreeMap<String, String>,
    spec: &DeploySpec<'_>,
) -> BTreeMap<String, String> {
    base.insert("AWS_ENDPOINT_URL".into(), spec.endpoint.to_string());
    base.insert(
        "RUST_LOG".into(),
        checksum_validator::DEFAULT_LOG_FILTER.into(),
    );
    base
}

/// What a deployment needs besides the topology.
pub struct DeploySpec<'a> {
    pub validator: &'a ValidatorConfig,
    pub notifier: &'a NotifierConfig,
    /// `AWS_ENDPOINT_URL` of the functions: the fidelity layer.
    pub endpoint: &'a str,
    pub overrides: &'a [EnvOverride],
    /// Create the event source mappings (`harness invoke` needs none).
    pub mappings: bool,
}

/// The two functions and their mappings in the engine's Lambda service.
pub struct Deployment {
    lambda: aws_sdk_lambda::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    names: HashMap<FunctionName, String>,
    /// (function, queue role, mapping UUID).
    mappings: Vec<(FunctionName, String, String)>,
    /// Made here (deleted at the end), or the primary stack's ([`Deployment::adopt`]:
    /// DeleteStack removes them).
    owned: bool,
}

/// What one read of a function's configuration says about what is awaited.
enum Waited {
    Done,
    Failed(DeployError),
    /// Not yet, in this state.
    Pending(String),
}

/// A grace after disabling a mapping: an engine poll pass that read `Enabled` just before
/// may still take one batch (MiniStack's poller passes at least once a second).
const DISABLE_GRACE: Duration = Duration::from_millis(1500);

/// One Invoke's answer.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub status: i32,
    /// `X-Amz-Function-Error` (`Unhandled`, ...), when the function failed.
    pub function_error: Option<String>,
    pub payload: String,
    /// The last 4 KB of the invocation's log (`LogType=Tail`), when the engine returns it.
    pub log_tail: Option<String>,
}

impl Deployment {
    /// The clients and the topology's function names, nothing made yet.
    fn empty(sdk: &aws_config::SdkConfig, topology: &Topology, owned: bool) -> Deployment {
        Deployment {
            lambda: aws_sdk_lambda::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            names: HashMap::from([
                (
                    FunctionName::Validator,
                    policy::function_of(&topology.names.validator_role),
                ),
                (
                    FunctionName::Notifier,
                    policy::function_of(&topology.names.notifier_role),
                ),
            ]),
            mappings: Vec::new(),
            owned,
        }
    }

    /// Creates both functions from the x86_64 zips (checked first), waits until they are
    /// Active, and creates their mappings when asked. `sdk` talks to the engine.
    pub async fn create(
        sdk: &aws_config::SdkConfig,
        topology: &Topology,
        spec: &DeploySpec<'_>,
    ) -> Result<Deployment, DeployError> {
        let packages = package::locate(Arch::X86_64)?;
        let mut d = Deployment::empty(sdk, topology, true);
        match d.create_all(topology, spec, &packages).await {
            Ok(()) => Ok(d),
            Err(e) => {
                // Nothing half-made stays behind.
                d.delete().await;
                Err(e)
            }
        }
    }

    async fn create_all(
        &mut self,
        topology: &Topology,
        spec: &DeploySpec<'_>,
        packages: &[package::Package],
    ) -> Result<(), DeployError> {
        let d = self;
        let timeout = topology.timing.function_timeout_seconds.ceil().max(1.0) as i32;
        for (function, pkg, role, base) in [
            (
                FunctionName::Validator,
                &packages[0],
                &topology.names.validator_role,
                validator_env(spec.validator),
            ),
            (
                FunctionName::Notifier,
                &packages[1],
                &topology.names.notifier_role,
                notifier_env(spec.notifier),
            ),
        ] {
            let mut env: HashMap<String, String> = with_runtime(base, spec).into_iter().collect();
            for o in spec.overrides.iter().filter(|o| o.function == function) {
                env.insert(o.name.clone(), o.value.clone());
            }
            let name = d.names[&function].clone();
            d.lambda
                .create_function()
                .function_name(&name)
                .runtime(Runtime::Providedal2023)
                .handler("bootstrap")
                .role(format!("arn:aws:iam::{}:role/{role}", topology.account))
                .code(
                    FunctionCode::builder()
                        .zip_file(Blob::new(pkg.bytes()?))
                        .build(),
                )
                .architectures(Architecture::X8664)
                .timeout(timeout)
                .memory_size(topology.function_memory_mb as i32)
                .environment(Environment::builder().set_variables(Some(env)).build())
                .tags("ManagedBy", "harness")
                .tags("HarnessRun", &topology.names.suffix)
                .send()
                .await
                .map_err(|e| DeployError::aws(format!("CreateFunction {name}"), e))?;
        }
        for function in [FunctionName::Validator, FunctionName::Notifier] {
            d.wait_active(function).await?;
        }
        if spec.mappings {
            let batching = topology.timing.batching_window_seconds.round() as i32;
            for (function, role) in crate::topology::MAPPINGS {
                let queue = topology
                    .queues
                    .by_role(role)
                    .ok_or_else(|| DeployError::Aws {
                        call: "CreateEventSourceMapping".into(),
                        why: format!("the topology has no {role} queue"),
                    })?;
                let mut call = d
                    .lambda
                    .create_event_source_mapping()
                    .event_source_arn(&queue.arn)
                    .function_name(&d.names[&function])
                    .batch_size(topology.batch_size as i32)
                    .function_response_types(FunctionResponseType::ReportBatchItemFailures)
                    .enabled(true);
                if batching > 0 {
                    call = call.maximum_batching_window_in_seconds(batching);
                }
                let out = call
                    .send()
                    .await
                    .map_err(|e| DeployError::aws(format!("CreateEventSourceMapping {role}"), e))?;
                d.mappings.push((
                    function,
                    role.to_string(),
                    out.uuid().unwrap_or_default().to_string(),
                ));
            }
        }
        Ok(())
    }

    /// The function's name in the engine.
    pub fn name(&self, f: FunctionName) -> &str {
        &self.names[&f]
    }

    async fn wait_active(&self, f: FunctionName) -> Result<(), DeployError> {
        self.wait_configuration(self.name(f), |c| match c.state() {
            None | Some(State::Active) => Waited::Done,
            other => Waited::Pending(format!("{other:?}")),
        })
        .await
    }

    /// Reads `name`'s configuration every 100 ms until `check` says done or failed, for at
    /// most 30 s.
    async fn wait_configuration(
        &self,
        name: &str,
        check: impl Fn(&GetFunctionConfigurationOutput) -> Waited,
    ) -> Result<(), DeployError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let c = self
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| DeployError::aws(format!("GetFunctionConfiguration {name}"), e))?;
            match check(&c) {
                Waited::Done => return Ok(()),
                Waited::Failed(e) => return Err(e),
                Waited::Pending(state) if Instant::now() > deadline => {
                    return Err(DeployError::NotActive {
                        function: name.to_string(),
                        secs: 30,
                        state,
                    })
                }
                Waited::Pending(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Enables or disables a function's mappings (a scenario's trigger pause/resume) and
    /// waits until the engine reports them so; after a disable, no batch is taken once this
    /// returns.
    pub async fn set_enabled(&self, f: FunctionName, enabled: bool) -> Result<(), DeployError> {
        let want = if enabled { "Enabled" } else { "Disabled" };
        for (_, role, uuid) in self.mappings.iter().filter(|(g, _, _)| *g == f) {
            self.lambda
                .update_event_source_mapping()
                .uuid(uuid)
                .enabled(enabled)
                .send()
                .await
                .map_err(|e| DeployError::aws(format!("UpdateEventSourceMapping {role}"), e))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let m = self
                    .lambda
                    .get_event_source_mapping()
                    .uuid(uuid)
                    .send()
                    .await
                    .map_err(|e| DeployError::aws(format!("GetEventSourceMapping {role}"), e))?;
                if m.state() == Some(want) || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if !enabled {
            tokio::time::sleep(DISABLE_GRACE).await;
        }
        Ok(())
    }

    /// One synchronous Invoke of `f` with `payload`.
    pub async fn invoke(&self, f: FunctionName, payload: Vec<u8>) -> Result<Invoked, DeployError> {
        let name = self.name(f);
        let out = self
            .lambda
            .invoke()
            .function_name(name)
            .payload(Blob::new(payload))
            .log_type(LogType::Tail)
            .send()
            .await
            .map_err(|e| DeployError::aws(format!("Invoke {name}"), e))?;
        use base64::Engine as _;
        Ok(Invoked {
            status: out.status_code(),
            function_error: out.function_error().map(str::to_string),
            payload: out
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).to_string())
                .unwrap_or_default(),
            log_tail: out.log_result().and_then(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).to_string())
            }),
        })
    }

    /// Every log line of `f` so far, in order (for `harness invoke` and error reports).
    pub async fn log_lines(&self, f: FunctionName) -> Vec<String> {
        let group = format!("/aws/lambda/{}", self.name(f));
        match self
            .logs
            .filter_log_events()
            .log_group_name(group)
            .send()
            .await
        {
            Ok(out) => out
                .events()
                .iter()
                .filter_map(|e| e.message().map(str::to_string))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Deletes the mappings, then the functions and their log groups (best effort: what
    /// fails is logged). Adopted ones are the stack's: its deletion removes them.
    pub async fn delete(&self) {
        if !self.owned {
            return;
        }
        for (_, role, uuid) in &self.mappings {
            if let Err(e) = self
                .lambda
                .delete_event_source_mapping()
                .uuid(uuid)
                .send()
                .await
            {
                tracing::warn!(mapping = %role, error = %crate::errors::sdk(e), "deleting an event source mapping failed");
            }
        }
        for name in self.names.values() {
            if let Err(e) = self
                .lambda
                .delete_function()
                .function_name(name)
                .send()
                .await
            {
                tracing::warn!(function = %name, error = %crate::errors::sdk(e), "deleting a function failed");
            }
            let _ = self
                .logs
                .delete_log_group()
                .log_group_name(format!("/aws/lambda/{name}"))
                .send()
                .await;
        }
    }

    /// Follows both functions' logs until `stop`, pushing what they decided as observations
    /// (see the module docs), telling the replicator when a version's first attempt is over
    /// (as the in-process delivery hook does), and sending the first configuration error of
    /// a function that cannot start on `fatal`.
    ///
    /// `engine_log` is the engine's own log: MiniStack writes no CloudWatch line of an Init
    /// phase that fails (see `engine::gaps`), but quotes the function's output in its log,
    /// where the follower looks for the `invalid configuration` line of these functions.
    pub fn follow(
        self: &Arc<Self>,
        topology: &Topology,
        observations: Observations,
        replicator: Option<Arc<Replicator>>,
        fatal: watch::Sender<Option<String>>,
        engine_log: Option<std::path::PathBuf>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let me = self.clone();
        let roles: HashMap<String, String> = topology
            .queues
            .all()
            .into_iter()
            .flat_map(|(role, q)| {
                [
                    (q.name.clone(), role.to_string()),
                    (q.arn.clone(), role.to_string()),
                ]
            })
            .collect();
        tokio::spawn(async move {
            let engine_log = engine_log.map(|path| {
                let from = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (path, from)
            });
            let mut follower = Follower {
                seen: HashSet::new(),
                watermark: HashMap::new(),
                roles,
                engine_log,
            };
            loop {
                for f in [FunctionName::Validator, FunctionName::Notifier] {
                    for line in follower.poll(&me, f).await {
                        follower
                            .apply(f, line, &observations, replicator.as_deref(), &fatal)
                            .await;
                    }
                }
                for (f, error) in follower.init_errors(&me) {
                    follower
                        .apply(
                            f,
                            LogLine::InvalidConfiguration(error),
                            &observations,
                            replicator.as_deref(),
                            &fatal,
                        )
                        .await;
                }
                tokio::select! {
                    _ = stop.changed() => {
                        // A last read: what the functions logged before the stop.
                        for f in [FunctionName::Validator, FunctionName::Notifier] {
                            for line in follower.poll(&me, f).await {
                                follower.apply(f, line, &observations, replicator.as_deref(), &fatal).await;
                            }
                        }
                        return;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        })
    }
}

struct Follower {
    /// (stream, timestamp, message) of every event read within the lookback.
    seen: HashSet<(String, i64, String)>,
    /// Newest timestamp read per function.
    watermark: HashMap<FunctionName, i64>,
    /// Queue name or ARN -> role.
    roles: HashMap<String, String>,
    /// The engine's log and how far it was read.
    engine_log: Option<(std::path::PathBuf, u64)>,
}

/// How far back each read looks behind the newest event seen: events of one invocation
/// share a timestamp, and an engine may append a slower invocation's lines late.
const LOOKBACK_MS: i64 = 10_000;

impl Follower {
    async fn poll(&mut self, d: &Deployment, f: FunctionName) -> Vec<LogLine> {
        let group = format!("/aws/lambda/{}", d.name(f));
        let mark = self.watermark.get(&f).copied().unwrap_or(0);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let answer = d
                .logs
                .filter_log_events()
                .log_group_name(&group)
                .start_time((mark - LOOKBACK_MS).max(0))
                .set_next_token(token.clone())
                .send()
                .await;
            let Ok(page) = answer else {
                // No invocation has written the group yet.
                return out;
            };
            for e in page.events() {
                let ts = e.timestamp().unwrap_or(0);
                let msg = e.message().unwrap_or_default().to_string();
                let key = (
                    e.event_id()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.log_stream_name().unwrap_or_default().to_string()),
                    ts,
                    msg.clone(),
                );
                if !self.seen.insert(key) {
                    continue;
                }
                self.watermark
                    .entry(f)
                    .and_modify(|m| *m = (*m).max(ts))
                    .or_insert(ts);
                if let Some(line) = parse_line(&msg) {
                    out.push(line);
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() || page.events().is_empty() {
                break;
            }
        }
        let horizon = self.watermark.get(&f).copied().unwrap_or(0) - 2 * LOOKBACK_MS;
        self.seen.retain(|(_, ts, _)| *ts >= horizon);
        out
    }

    /// The `invalid configuration` errors of this deployment's functions quoted in the
    /// engine's log since the last read.
    fn init_errors(&mut self, d: &Deployment) -> Vec<(FunctionName, String)> {
        use std::io::{Read, Seek};
        let Some((path, offset)) = &mut self.engine_log else {
            return Vec::new();
        };
        let Ok(mut file) = std::fs::File::open(&*path) else {
            return Vec::new();
        };
        let mut text = String::new();
        if file.seek(std::io::SeekFrom::Start(*offset)).is_err()
            || file.read_to_string(&mut text).is_err()
        {
            return Vec::new();
        }
        // Only whole lines: a line being written is read next time.
        let whole = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        *offset += whole as u64;
        engine_log_init_errors(&text[..whole], |f| d.name(f).to_string())
    }

    fn role(&self, queue: &str) -> String {
        self.roles
            .get(queue)
            .cloned()
            .unwrap_or_else(|| queue.to_string())
    }

    async fn apply(
        &self,
        f: FunctionName,
        line: LogLine,
        obs: &Observations,
        replicator: Option<&Replicator>,
        fatal: &watch::Sender<Option<String>>,
    ) {
        match line {
            LogLine::Decision(report) => {
                let done = report
                    .object
                    .as_ref()
                    .and_then(|o| Some((o.bucket.clone(), o.version_id.clone()?)));
                obs.push(Observation::Decision {
                    queue: "validation".into(),
                    report: *report,
                })
                .await;
                if let (Some(r), Some((bucket, version))) = (replicator, done) {
                    r.first_attempt_done(&bucket, &version).await;
                }
            }
            LogLine::Notified {
                queue,
                receive_count,
                report,
            } => {
                obs.push(Observation::Notified {
                    queue: self.role(&queue),
                    receive_count,
                    report: *report,
                })
                .await
            }
            LogLine::Batch {
                event_source_arn,
                size,
                failed,
            } => {
                obs.push(Observation::Batch {
                    queue: self.role(&event_source_arn),
                    size,
                    failed,
                })
                .await
            }
            LogLine::InvalidConfiguration(error) => {
                let function = match f {
                    FunctionName::Validator => "checksum-validator",
                    FunctionName::Notifier => "failure-notifier",
                };
                let why = format!("{function} cannot start: {error}");
                obs.push(Observation::BatchError {
                    queue: match f {
                        FunctionName::Validator => "validation".into(),
                        FunctionName::Notifier => "failure".into(),
                    },
                    error: why.clone(),
                })
                .await;
                fatal.send_if_modified(|slot| {
                    if slot.is_none() {
                        *slot = Some(why);
                        true
                    } else {
                        false
                    }
                });
            }
        }
    }
}

/// The functions' `invalid configuration` lines quoted in an engine's log `text`, each on a
/// line naming the function (`name` gives a function's name in the engine).
pub fn engine_log_init_errors(
    text: &str,
    name: impl Fn(FunctionName) -> String,
) -> Vec<(FunctionName, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(at) = line.find("{\"level\":") else {
            continue;
        };
        let Some(Ok(value)) = serde_json::Deserializer::from_str(&line[at..])
            .into_iter::<serde_json::Value>()
            .next()
        else {
            continue;
        };
        let Some(LogLine::InvalidConfiguration(error)) = parse_line(&value.to_string()) else {
            continue;
        };
        for f in [FunctionName::Validator, FunctionName::Notifier] {
            if line[..at].contains(&name(f)) {
                out.push((f, error.clone()));
            }
        }
    }
    out
}

/// A function log line the harness reads.
#[derive(Debug)]
pub enum LogLine {
    /// The validator's `record decided`.
    Decision(Box<RecordReport>),
    /// The notifier's `record notified`.
    Notified {
        /// The queue's name.
        queue: String,
        receive_count: Option<u32>,
        report: Box<NotifyReport>,
    },
    /// Either function's `batch answered`.
    Batch {
        event_source_arn: String,
        size: usize,
        failed: usize,
    },
    /// A function's `invalid configuration; the function cannot start`, with its error.
    InvalidConfiguration(String),
}

/// Reads one line of a function's JSON log (`checksum_validator::init_lambda_logging`);
/// `None` for every other line (the runtime's START/END/REPORT, other messages).
pub fn parse_line(line: &str) -> Option<LogLine> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let fields = v.get("fields")?;
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(|x| x.as_str())
            .and_then(checksum_validator::text::unescape)
    };
    let number = |k: &str| fields.get(k).and_then(|x| x.as_i64());
    match fields.get("message")?.as_str()? {
        "record decided" => Some(LogLine::Decision(Box::new(
            serde_json::from_str(&text("report")?).ok()?,
        ))),
        "record notified" => Some(LogLine::Notified {
            queue: text("queue")?,
            receive_count: number("receive_count").and_then(|n| u32::try_from(n).ok()),
            report: Box::new(serde_json::from_str(&text("report")?).ok()?),
        }),
        "batch answered" => Some(LogLine::Batch {
            event_source_arn: text("event_source_arn").unwrap_or_default(),
            size: number("messages")? as usize,
            failed: number("batch_item_failures")? as usize,
        }),
        "invalid configuration; the function cannot start" => Some(LogLine::InvalidConfiguration(
            fields.get("error")?.as_str()?.to_string(),
        )),
        _ => None,
    }
}

/// Errors of `--functions deployed`: the functions created in the engine's Lambda service.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("--functions deployed needs an engine that runs Lambda functions itself: {engine} cannot here ({why}). Engines that can: {supported}. The default, --functions in-process, runs on every engine")]
    Unsupported {
        engine: String,
        why: &'static str,
        supported: &'static str,
    },
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{call}: {why}")]
    Aws { call: String, why: String },
    #[error("{function} did not become Active within {secs}s (last state: {state})")]
    NotActive {
        function: String,
        secs: u64,
        state: String,
    },
    #[error("{what} is not supported with --functions deployed: {why}")]
    StepUnsupported { what: String, why: &'static str },
    /// A variable the stack's function sets differs from the run's configuration.
    #[error("{function}: the stack sets {name}={deployed:?} but the run's configuration is {name}={run:?}: the template and the topology disagree (regenerate it: make template)")]
    Drift {
        function: String,
        name: String,
        deployed: String,
        run: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl DeployError {
    /// An SDK error of `call`, with its whole source chain.
    pub fn aws<E: std::error::Error>(call: impl Into<String>, e: E) -> DeployError {
        DeployError::Aws {
            call: call.into(),
            why: crate::errors::sdk(e),
        }
    }
}

mod adopt;
#[cfg(test)]
mod tests;
