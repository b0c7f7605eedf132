//! API faults, injected by the fidelity layer in each service's own wire format.
//!
//! A scenario names a service, optionally an operation (and for S3 a key prefix), an effect
//! and a budget:
//!
//! ```toml
//! [[step]]
//! fault = { service = "s3", operation = "HeadObject", effect = "throttle", count = 4 }
//! [[step]]
//! fault = { service = "sns", effect = "throttle", seconds = 6 }
//! [[step]]
//! fault = { service = "sqs", operation = "ReceiveMessage", effect = "latency", latency_ms = 800, rate = 0.5, seconds = 10 }
//! ```
//!
//! | effect | what the client gets |
//! |---|---|
//! | `throttle` | the service's throttling error: S3 `503 SlowDown`, SQS `400 RequestThrottled`, SNS `429 Throttled`, KMS and EventBridge `400 ThrottlingException` (each service's API reference) |
//! | `unavailable` | S3, SQS, SNS `503 ServiceUnavailable`; KMS `500 KMSInternalException`; EventBridge `500 InternalException` |
//! | `error` | `code` with HTTP `status` (e.g. `AccessDenied`, 403) |
//! | `latency` | the real answer, `latency_ms` late |
//! | `reset` | the connection is closed without an answer |
//!
//! Budgets: `count` (the next N matching requests), `seconds` (every matching request for
//! that long), `rate` (each matching request with that probability, within `seconds` or
//! for `count` firings). The wire format follows the request: REST-XML `<Error>` for S3,
//! the `awsQuery` `<ErrorResponse>` for form-encoded requests (SNS; SQS from older clients),
//! and `awsJson` `{"__type": ...}` for JSON requests (SQS, KMS, EventBridge), with SQS's
//! `x-amzn-query-error` header. Every firing is recorded for the transcript.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

/// A service a fault can target (its SigV4 signing name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    S3,
    Sqs,
    Sns,
    Kms,
    Events,
}

impl Service {
    pub fn from_signing_name(name: &str) -> Option<Service> {
        Some(match name {
            "s3" => Service::S3,
            "sqs" => Service::Sqs,
            "sns" => Service::Sns,
            "kms" => Service::Kms,
            "events" => Service::Events,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Sqs => "sqs",
            Service::Sns => "sns",
            Service::Kms => "kms",
            Service::Events => "events",
        }
    }
}

/// What a fault does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EffectKind {
    Throttle,
    Unavailable,
    Error,
    Latency,
    Reset,
}

/// A fault as a scenario writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub service: Service,
    /// The API operation (`HeadObject`, `Publish`, `ReceiveMessage`, ...); any when absent.
    #[serde(default)]
    pub operation: Option<String>,
    /// S3 only: object keys starting with this.
    #[serde(default)]
    pub key_prefix: Option<String>,
    pub effect: EffectKind,
    /// For `error`: the error code and HTTP status.
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    /// For `latency`.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub rate: Option<f64>,
}

impl FaultSpec {
    /// A fault no request of the harness matches (EventBridge `PutEvents` is never called):
    /// installed, it makes every request pass the fault machinery's inspection (benchmarks).
    pub fn unmatched() -> FaultSpec {
        FaultSpec {
            service: Service::Events,
            operation: Some("PutEvents".into()),
            key_prefix: None,
            effect: EffectKind::Throttle,
            code: None,
            status: None,
            latency_ms: None,
            count: Some(10_000),
            seconds: None,
            rate: None,
        }
    }

    /// What makes no sense, as (message, hint).
    pub fn check(&self) -> Result<(), (String, &'static str)> {
        if self.count.is_none() && self.seconds.is_none() {
            return Err((
                "a fault needs a budget".into(),
                "add count = N (requests) or seconds = S (a time window)",
            ));
        }
        if let Some(s) = self.seconds {
            if !s.is_finite() || s <= 0.0 || s > 3600.0 {
                return Err((
                    format!("seconds = {s} is out of range"),
                    "use 0 < seconds <= 3600",
                ));
            }
        }
        if let Some(r) = self.rate {
            if !r.is_finite() || r <= 0.0 || r > 1.0 {
                return Err((
                    format!("rate = {r} is not a probability"),
                    "use 0 < rate <= 1",
                ));
            }
        }
        if self.count == Some(0) || self.count.is_some_and(|c| c > 10_000) {
            return Err(("count is out of range".into(), "use 1 to 10000 requests"));
        }
        match self.effect {
            EffectKind::Error => match (&self.code, self.status) {
                (Some(c), Some(s)) if !c.is_empty() && (400..=599).contains(&s) => {}
                _ => {
                    return Err((
                        "effect = \"error\" needs code and status".into(),
                        "e.g. code = \"AccessDenied\", status = 403",
                    ))
                }
            },
            EffectKind::Latency => match self.latency_ms {
                Some(1..=120_000) => {}
                _ => {
                    return Err((
                        "effect = \"latency\" needs latency_ms".into(),
                        "use 1 to 120000 milliseconds",
                    ))
                }
            },
            _ => {}
        }
        if self.effect != EffectKind::Error && (self.code.is_some() || self.status.is_some()) {
            return Err((
                "code and status apply to effect = \"error\" only".into(),
                "remove them, or use effect = \"error\"",
            ));
        }
        if self.key_prefix.is_some() && self.service != Service::S3 {
            return Err(("key_prefix applies to s3 only".into(), "remove key_prefix"));
        }
        Ok(())
    }

    /// One line naming the fault, for the transcript.
    pub fn describe(&self) -> String {
        let op = self.operation.as_deref().unwrap_or("*");
        let what = match self.effect {
            EffectKind::Throttle => {
                let (status, code) = throttle(self.service);
                format!("throttle ({status} {code})")
            }
            EffectKind::Unavailable => {
                let (status, code) = unavailable(self.service);
                format!("unavailable ({status} {code})")
            }
            EffectKind::Error => format!(
                "error ({} {})",
                self.status.unwrap_or(0),
                self.code.as_deref().unwrap_or("")
            ),
            EffectKind::Latency => format!("latency {} ms", self.latency_ms.unwrap_or(0)),
            EffectKind::Reset => "connection reset".into(),
        };
        let scope = match &self.key_prefix {
            Some(p) => format!(" on keys {p:?}*"),
            None => String::new(),
        };
        let budget = match (self.count, self.seconds, self.rate) {
            (_, _, Some(r)) if self.seconds.is_some() => {
                format!(
                    "{:.0}% of requests for {}s",
                    r * 100.0,
                    self.seconds.unwrap_or(0.0)
                )
            }
            (Some(c), _, Some(r)) => format!("{c} requests at {:.0}%", r * 100.0),
            (Some(c), None, None) => format!("next {c} requests"),
            (_, Some(s), None) => format!("every request for {s}s"),
            _ => String::new(),
        };
        format!("{} {op}{scope}: {what}, {budget}", self.service.as_str())
    }
}

/// The throttling error of a service: (HTTP status, code).
pub fn throttle(service: Service) -> (u16, &'static str) {
    match service {
        Service::S3 => (503, "SlowDown"),
        Service::Sqs => (400, "RequestThrottled"),
        Service::Sns => (429, "Throttled"),
        Service::Kms | Service::Events => (400, "ThrottlingException"),
    }
}

/// The service's own "try again later" server error: (HTTP status, code).
pub fn unavailable(service: Service) -> (u16, &'static str) {
    match service {
        Service::S3 | Service::Sqs | Service::Sns => (503, "ServiceUnavailable"),
        Service::Kms => (500, "KMSInternalException"),
        Service::Events => (500, "InternalException"),
    }
}

/// What the layer does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Fail { status: u16, code: String },
    Delay(Duration),
    Reset,
}

struct Rule {
    spec: FaultSpec,
    index: usize,
    left: Option<u32>,
    until: Option<Instant>,
}

/// One firing, for the transcript.
#[derive(Debug, Clone)]
pub struct Firing {
    /// Which fault (the order of its step among the scenario's faults).
    pub fault: usize,
    pub operation: String,
}

/// The faults a run installed and what fired.
#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    /// Every fault installed, in order (its description stays after it is spent).
    installed: Mutex<Vec<FaultSpec>>,
    fired: Mutex<Vec<Firing>>,
    /// Whether any fault is installed at all (read without a lock on every request).
    armed: std::sync::atomic::AtomicBool,
}

impl Faults {
    pub async fn install(&self, spec: FaultSpec) {
        let mut installed = self.installed.lock().await;
        let index = installed.len();
        installed.push(spec.clone());
        self.rules.lock().await.push(Rule {
            until: spec
                .seconds
                .map(|s| Instant::now() + Duration::from_secs_f64(s)),
            left: spec.count,
            index,
            spec,
        });
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Removes every fault still armed (their descriptions and firings stay in the
    /// report): one workload's unspent budget never reaches the next.
    pub async fn disarm(&self) {
        self.rules.lock().await.clear();
    }

    /// Whether any fault is installed (a request needs no inspection otherwise).
    pub fn armed(&self) -> bool {
        self.armed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether an installed, unspent fault on `service` filters by operation (the layer
    /// then reads an `awsQuery` body to learn the operation).
    pub async fn needs_operation(&self, service: Service) -> bool {
        self.rules
            .lock()
            .await
            .iter()
            .any(|r| r.spec.service == service && r.spec.operation.is_some())
    }

    /// The action for a request, if a fault takes it (and spends its budget).
    pub async fn take(
        &self,
        service: Service,
        operation: &str,
        key: Option<&str>,
    ) -> Option<Action> {
        let now = Instant::now();
        let mut rules = self.rules.lock().await;
        rules.retain(|r| r.left != Some(0) && r.until.is_none_or(|u| now < u));
        for rule in rules.iter_mut() {
            let s = &rule.spec;
            if s.service != service
                || s.operation.as_deref().is_some_and(|o| o != operation)
                || s.key_prefix
                    .as_deref()
                    .is_some_and(|p| !key.is_some_and(|k| k.starts_with(p)))
            {
                continue;
            }
            if let Some(rate) = s.rate {
                if rand::random::<f64>() >= rate {
                    continue;
                }
            }
            if let Some(left) = &mut rule.left {
                *left -= 1;
            }
            let action = match s.effect {
                EffectKind::Throttle => {
                    let (status, code) = throttle(service);
                    Action::Fail {
                        status,
                        code: code.into(),
                    }
                }
                EffectKind::Unavailable => {
                    let (status, code) = unavailable(service);
                    Action::Fail {
                        status,
                        code: code.into(),
                    }
                }
                EffectKind::Error => Action::Fail {
                    status: s.status.unwrap_or(500),
                    code: s.code.clone().unwrap_or_default(),
                },
                EffectKind::Latency => {
                    Action::Delay(Duration::from_millis(s.latency_ms.unwrap_or(0)))
                }
                EffectKind::Reset => Action::Reset,
            };
            tracing::debug!(
                service = service.as_str(),
                operation,
                key,
                ?action,
                "fault fired"
            );
            self.fired.lock().await.push(Firing {
                fault: rule.index,
                operation: operation.to_string(),
            });
            return Some(action);
        }
        None
    }

    /// (fault, firings) per installed fault, in order.
    pub async fn report(&self) -> Vec<(FaultSpec, Vec<Firing>)> {
        let installed = self.installed.lock().await.clone();
        let fired = self.fired.lock().await.clone();
        installed
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let f = fired.iter().filter(|f| f.fault == i).cloned().collect();
                (spec, f)
            })
            .collect()
    }

    /// Requests failed, delayed or reset so far.
    pub async fn fired(&self) -> usize {
        self.fired.lock().await.len()
    }
}

/// The wire protocol of a request, which its error answer must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    RestXml,
    Query,
    /// `awsJson` with its content type version (`1.0`, `1.1`).
    Json(&'static str),
}

impl Protocol {
    pub fn of(service: Service, content_type: &str) -> Protocol {
        if service == Service::S3 {
            Protocol::RestXml
        } else if content_type.contains("x-amz-json-1.0") {
            Protocol::Json("1.0")
        } else if content_type.contains("x-amz-json") {
            Protocol::Json("1.1")
        } else {
            Protocol::Query
        }
    }
}

/// An error answer as the service would write it: (status, headers, body).
pub fn error_answer(
    service: Service,
    protocol: Protocol,
    head: bool,
    status: u16,
    code: &str,
) -> (u16, Vec<(&'static str, String)>, String) {
    let message = format!("{code} (fault injected by the harness fidelity layer)");
    let request_id = "harness-fault";
    let sender = if status < 500 { "Sender" } else { "Receiver" };
    match protocol {
        Protocol::RestXml => (
            status,
            vec![
                ("content-type", "application/xml".into()),
                ("x-amz-request-id", request_id.into()),
            ],
            if head {
                String::new()
            } else {
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
                )
            },
        ),
        Protocol::Query => (
            status,
            vec![
                ("content-type", "text/xml".into()),
                ("x-amzn-requestid", request_id.into()),
            ],
            format!(
                "<ErrorResponse><Error><Type>{sender}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ),
        ),
        Protocol::Json(version) => {
            let type_name = match service {
                Service::Sqs => format!("com.amazonaws.sqs#{code}"),
                _ => code.to_string(),
            };
            let mut headers = vec![
                ("content-type", format!("application/x-amz-json-{version}")),
                ("x-amzn-requestid", request_id.into()),
            ];
            if service == Service::Sqs {
                // SQS's JSON protocol keeps the query error code here for older clients.
                headers.push(("x-amzn-query-error", format!("{code};{sender}")));
            }
            (
                status,
                headers,
                serde_json::json!({"__type": type_name, "message": message}).to_string(),
            )
        }
    }
}

/// The S3 operation of a path-style request: the SDK's `x-id` when it sends one, else
/// read from the method, the path and the query.
pub fn s3_operation(
    method: &str,
    has_key: bool,
    query: &[(String, Option<String>)],
    copy: bool,
) -> String {
    if let Some((_, Some(id))) = query.iter().find(|(k, _)| k == "x-id") {
        return id.clone();
    }
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let op = match (method, has_key) {
        ("HEAD", true) => "HeadObject",
        ("HEAD", false) => "HeadBucket",
        ("GET", true) if has("attributes") => "GetObjectAttributes",
        ("GET", true) if has("tagging") => "GetObjectTagging",
        ("GET", true) => "GetObject",
        ("GET", false) if has("versions") => "ListObjectVersions",
        ("GET", false) if has("replication") => "GetBucketReplication",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) => "ListObjects",
        ("PUT", true) if has("uploadId") && copy => "UploadPartCopy",
        ("PUT", true) if has("uploadId") => "UploadPart",
        ("PUT", true) if copy => "CopyObject",
        ("PUT", true) if has("tagging") => "PutObjectTagging",
        ("PUT", true) => "PutObject",
        ("PUT", false) => "PutBucketConfiguration",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("DELETE", false) => "DeleteBucket",
        _ => "Unknown",
    };
    op.to_string()
}

/// What the layer works out of a path-style S3 request to match faults against it: the
/// operation and the decoded key (the armed path's per-request work besides [`Faults::take`]).
pub fn s3_request(method: &str, path_and_query: &str, copy: bool) -> (String, Option<String>) {
    let target = super::target::S3Target::parse(path_and_query);
    let path = path_and_query
        .split_once('?')
        .map(|(p, _)| p)
        .unwrap_or(path_and_query);
    let key = path.trim_start_matches('/').split_once('/').map(|(_, k)| {
        percent_encoding::percent_decode_str(k)
            .decode_utf8_lossy()
            .into_owned()
    });
    (
        s3_operation(method, target.has_key, &target.query, copy),
        key,
    )
}

/// `harness bench faults`: the fault machinery's own cost per request, idle (no fault
/// installed: one atomic load) and armed (a fault installed that matches nothing: the
/// request is parsed and every rule checked), measured over `n` synthetic S3 HEADs.
pub async fn bench(n: u32) -> String {
    let pq = "/autobackup-documents-primary-dev-abc123/reports/Q1%20summary%2Bfinal.txt?versionId=AaIAhpgSZNPcXQthk6d0dYybxEdgJtVG";
    let idle = Faults::default();
    let started = Instant::now();
    let mut hits = 0u32;
    for _ in 0..n {
        if std::hint::black_box(&idle).armed() {
            hits += 1;
        }
    }
    let idle_ns = started.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    let armed = Faults::default();
    armed.install(FaultSpec::unmatched()).await;
    let started = Instant::now();
    for _ in 0..n {
        if armed.armed() {
            let (op, key) = s3_request("HEAD", std::hint::black_box(pq), false);
            if armed.take(Service::S3, &op, key.as_deref()).await.is_some() {
                hits += 1;
            }
        }
    }
    let armed_ns = started.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    format!(
        "bench faults: {n} S3 HEAD requests through the fault machinery ({hits} fired)\n  idle (no fault installed): {idle_ns:.1} ns per request\n  armed (a fault that matches nothing): {armed_ns:.0} ns per request\n"
    )
}

/// The `Action` of an `awsQuery` form body.
pub fn query_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|p| p.strip_prefix("Action="))
        .map(str::to_string)
}

/// The operation of an `awsJson` request from its `X-Amz-Target` (`Service.Operation`).
pub fn json_operation(target: &str) -> Option<&str> {
    target.rsplit_once('.').map(|(_, op)| op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn spec(toml_text: &str) -> FaultSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[rstest]
    #[case(
        Service::S3,
        Protocol::RestXml,
        503,
        "SlowDown",
        "<Error><Code>SlowDown</Code>"
    )]
    #[case(
        Service::Sns,
        Protocol::Query,
        429,
        "Throttled",
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttled</Code>"
    )]
    #[case(
        Service::Kms,
        Protocol::Json("1.1"),
        400,
        "ThrottlingException",
        "{\"__type\":\"ThrottlingException\""
    )]
    #[case(
        Service::Sqs,
        Protocol::Json("1.0"),
        400,
        "RequestThrottled",
        "{\"__type\":\"com.amazonaws.sqs#RequestThrottled\""
    )]
    fn each_service_answers_in_its_own_format(
        #[case] service: Service,
        #[case] protocol: Protocol,
        #[case] status: u16,
        #[case] code: &str,
        #[case] starts: &str,
    ) {
        let (s, headers, body) = error_answer(service, protocol, false, status, code);
        assert_eq!(s, status);
        assert!(body.contains(starts), "{body}");
        if service == Service::Sqs {
            assert!(headers
                .iter()
                .any(|(k, v)| *k == "x-amzn-query-error" && v == "RequestThrottled;Sender"));
        }
    }

    #[test]
    fn a_head_gets_no_body() {
        let (_, _, body) = error_answer(Service::S3, Protocol::RestXml, true, 503, "SlowDown");
        assert!(body.is_empty());
    }

    #[rstest]
    #[case("HEAD", true, "", false, "HeadObject")]
    #[case("GET", true, "versionId=v", false, "GetObject")]
    #[case("GET", true, "x-id=GetObject", false, "GetObject")]
    #[case("GET", false, "versions&prefix=a", false, "ListObjectVersions")]
    #[case("PUT", true, "", true, "CopyObject")]
    #[case("PUT", true, "partNumber=1&uploadId=u", false, "UploadPart")]
    #[case("POST", true, "uploadId=u", false, "CompleteMultipartUpload")]
    fn reads_s3_operations(
        #[case] method: &str,
        #[case] has_key: bool,
        #[case] query: &str,
        #[case] copy: bool,
        #[case] want: &str,
    ) {
        let q = crate::fidelity::target::S3Target::parse(&format!("/b/k?{query}")).query;
        assert_eq!(s3_operation(method, has_key, &q, copy), want);
    }

    #[test]
    fn reads_query_and_json_operations() {
        assert_eq!(
            query_action(b"Action=Publish&TopicArn=x").as_deref(),
            Some("Publish")
        );
        assert_eq!(query_action(b"TopicArn=x"), None);
        assert_eq!(
            json_operation("AmazonSQS.ReceiveMessage"),
            Some("ReceiveMessage")
        );
        assert_eq!(json_operation("TrentService.Decrypt"), Some("Decrypt"));
    }

    #[tokio::test]
    async fn a_count_budget_fires_exactly_that_often_and_only_where_it_matches() {
        let f = Faults::default();
        f.install(spec(
            r#"service = "s3"
operation = "HeadObject"
key_prefix = "a/"
effect = "throttle"
count = 2"#,
        ))
        .await;
        assert_eq!(f.take(Service::S3, "GetObject", Some("a/x")).await, None);
        assert_eq!(f.take(Service::S3, "HeadObject", Some("b/x")).await, None);
        assert_eq!(f.take(Service::Sqs, "HeadObject", None).await, None);
        for _ in 0..2 {
            assert_eq!(
                f.take(Service::S3, "HeadObject", Some("a/x")).await,
                Some(Action::Fail {
                    status: 503,
                    code: "SlowDown".into()
                })
            );
        }
        assert_eq!(f.take(Service::S3, "HeadObject", Some("a/x")).await, None);
        let report = f.report().await;
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].1.len(), 2);
    }

    #[tokio::test]
    async fn a_window_ends() {
        let f = Faults::default();
        f.install(spec(
            "service = \"sns\"\neffect = \"unavailable\"\nseconds = 0.2",
        ))
        .await;
        assert!(f.take(Service::Sns, "Publish", None).await.is_some());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(f.take(Service::Sns, "Publish", None).await.is_none());
    }

    #[rstest]
    #[case("service = \"s3\"\neffect = \"throttle\"", "budget")]
    #[case("service = \"s3\"\neffect = \"error\"\ncount = 1", "code and status")]
    #[case("service = \"s3\"\neffect = \"latency\"\ncount = 1", "latency_ms")]
    #[case(
        "service = \"sns\"\neffect = \"throttle\"\ncount = 1\nkey_prefix = \"x\"",
        "s3 only"
    )]
    #[case(
        "service = \"s3\"\neffect = \"throttle\"\nseconds = inf",
        "out of range"
    )]
    #[case(
        "service = \"s3\"\neffect = \"throttle\"\ncount = 1\nrate = 2.0",
        "probability"
    )]
    fn nonsense_is_refused(#[case] text: &str, #[case] says: &str) {
        let err = spec(text).check().unwrap_err();
        assert!(err.0.contains(says), "{}", err.0);
    }
}
