//! AWS adapter, part 1: where the endpoint, region and addressing come from, the SDK
//! clients built from them, and how SDK errors are classified into [`AgentError`]s.
//!
//! Endpoint and credentials come from the standard SDK environment (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, profiles, ...) unless given as flags; region from `AWS_REGION`
//! (default us-east-1). S3 uses path-style addressing by default when an endpoint URL is set
//! (local engines), virtual-hosted style against AWS.
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `errors`.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::errors::AgentError;

/// Connection flags shared by every command that talks to AWS.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// Endpoint URL of S3 and SNS, e.g. a local engine such as http://127.0.0.1:4566.
    /// Default: the standard SDK environment (AWS_ENDPOINT_URL), otherwise AWS itself.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// AWS region of the bucket and topic.
    #[arg(
        long,
        env = "AWS_REGION",
        default_value = "us-east-1",
        value_name = "REGION"
    )]
    pub region: String,

    /// Path-style S3 addressing (http://host/bucket/key) instead of virtual-hosted style.
    /// Default: true when an endpoint URL is set (local engines), false against AWS.
    /// `--force-path-style` alone means true; `--force-path-style false` turns it off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub force_path_style: Option<bool>,

    /// AWS account id (12 digits) that must own the bucket: sent as ExpectedBucketOwner on
    /// every S3 request, so a bucket deleted and re-created under the same name by another
    /// account is refused (403) instead of receiving the backups. Pre-flight compares it
    /// with the caller's account (sts:GetCallerIdentity) and warns when they differ.
    #[arg(long, env = "AUTOBACKUP_BUCKET_OWNER", value_name = "ACCOUNT", value_parser = account_id)]
    pub expected_owner: Option<String>,
}

/// An `--expected-owner` that is not an AWS account id.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an AWS account id (12 digits)")]
pub struct NotAnAccount(String);

/// Parses an AWS account id: exactly 12 ASCII digits.
pub fn account_id(s: &str) -> Result<String, NotAnAccount> {
    let t = s.trim();
    if t.len() == 12 && t.bytes().all(|b| b.is_ascii_digit()) {
        Ok(t.to_string())
    } else {
        Err(NotAnAccount(s.to_string()))
    }
}

/// Sets `x-amz-expected-bucket-owner` on every S3 request of the client it is added to
/// (and `x-amz-source-expected-bucket-owner` on copies, whose source is the same bucket),
/// so no call can be missed. `ListBuckets` and `CreateBucket` have no such parameter and are
/// left alone.
#[derive(Debug, Clone)]
pub struct ExpectedOwner {
    account: String,
}

/// Marks an operation that takes no ExpectedBucketOwner (in the operation's config bag).
#[derive(Debug, Clone, Copy)]
struct NoOwnerHeader;

impl aws_smithy_types::config_bag::Storable for NoOwnerHeader {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// The header S3 checks against the bucket owner's account.
pub const EXPECTED_OWNER_HEADER: &str = "x-amz-expected-bucket-owner";
/// The same for the source bucket of a copy.
pub const SOURCE_EXPECTED_OWNER_HEADER: &str = "x-amz-source-expected-bucket-owner";

impl ExpectedOwner {
    pub fn new(account: impl Into<String>) -> ExpectedOwner {
        ExpectedOwner {
            account: account.into(),
        }
    }
}

impl aws_sdk_s3::config::Intercept for ExpectedOwner {
    fn name(&self) -> &'static str {
        "ExpectedBucketOwner"
    }

    fn read_before_serialization(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        use aws_sdk_s3::operation::{
            create_bucket::CreateBucketInput, list_buckets::ListBucketsInput,
        };
        let input = context.input();
        if input.downcast_ref::<ListBucketsInput>().is_some()
            || input.downcast_ref::<CreateBucketInput>().is_some()
        {
            cfg.interceptor_state().store_put(NoOwnerHeader);
        }
        Ok(())
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        if cfg.load::<NoOwnerHeader>().is_some() {
            return Ok(());
        }
        let headers = context.request_mut().headers_mut();
        headers.try_insert(EXPECTED_OWNER_HEADER, self.account.clone())?;
        if headers.contains_key("x-amz-copy-source") {
            headers.try_insert(SOURCE_EXPECTED_OWNER_HEADER, self.account.clone())?;
        }
        Ok(())
    }
}

impl AwsArgs {
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint_url
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint().is_some())
    }

    /// How the endpoint is named in messages.
    pub fn describe_endpoint(&self) -> String {
        match self.endpoint() {
            Some(e) => e.to_string(),
            None => format!("AWS ({})", self.region),
        }
    }
}

/// The SDK clients a command needs.
#[derive(Clone, Debug)]
pub struct Aws {
    pub sdk: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    /// Only for pre-flight's `GetCallerIdentity` (see [`crate::preflight::owner`]).
    pub sts: aws_sdk_sts::Client,
    /// For messages: the endpoint URL or `AWS (<region>)`.
    pub endpoint: String,
    /// The account every S3 request names as the bucket owner, if any (see
    /// [`Aws::with_expected_owner`]).
    pub expected_owner: Option<String>,
}

impl Aws {
    pub async fn connect(args: &AwsArgs) -> Aws {
        // A stalled endpoint must not hang a cron backup: an attempt (one part, one call)
        // gets 300 s, a call with the SDK's retries 900 s.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(300))
            .operation_timeout(Duration::from_secs(900))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(args.region.clone()))
            .timeout_config(timeouts);
        if let Some(ep) = args.endpoint() {
            loader = loader.endpoint_url(ep);
        }
        let sdk = loader.load().await;
        Aws::from_config(sdk, args.path_style(), args.describe_endpoint())
    }

    /// Clients from an SDK configuration the caller loaded (the harness hands over its own,
    /// with the engine's endpoint and test credentials).
    pub fn from_config(sdk: SdkConfig, path_style: bool, endpoint: String) -> Aws {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(path_style)
                .build(),
        );
        let sns = aws_sdk_sns::Client::new(&sdk);
        let sts = aws_sdk_sts::Client::new(&sdk);
        Aws {
            sdk,
            s3,
            sns,
            sts,
            endpoint,
            expected_owner: None,
        }
    }
}

impl Aws {
    /// These clients with every S3 request carrying `ExpectedBucketOwner = account` (see
    /// [`ExpectedOwner`]); unchanged without an account. Every command applies its
    /// `--expected-owner` this way to the clients it is given, whoever built them.
    pub fn with_expected_owner(&self, account: Option<&str>) -> Aws {
        let Some(account) = account else {
            return self.clone();
        };
        let s3 = aws_sdk_s3::Client::from_conf(
            self.s3
                .config()
                .to_builder()
                .interceptor(ExpectedOwner::new(account))
                .build(),
        );
        Aws {
            s3,
            expected_owner: Some(account.to_string()),
            ..self.clone()
        }
    }
}

/// What went wrong with one SDK call, as far as the agent cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No HTTP answer at all: connection refused, DNS, timeout.
    NoAnswer(String),
    /// The service answered with an error.
    Service {
        status: Option<u16>,
        code: Option<String>,
        message: String,
    },
    /// Anything else (request construction, response parsing).
    Other(String),
}

impl Failure {
    pub fn code(&self) -> Option<&str> {
        match self {
            Failure::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Service { status, .. } => *status,
            _ => None,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Failure::NoAnswer(w) | Failure::Other(w) => w.clone(),
            Failure::Service {
                status,
                code,
                message,
            } => {
                let mut s = code.clone().unwrap_or_else(|| "error".into());
                if !message.is_empty() {
                    s.push_str(": ");
                    s.push_str(message);
                }
                if let Some(st) = status {
                    s.push_str(&format!(" (HTTP {st})"));
                }
                s
            }
        }
    }

    /// Credentials that the service does not accept.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken"
                    | "TokenRefreshRequired"
                    | "InvalidClientTokenId"
                    | "UnrecognizedClientException"
                    | "AuthFailure"
            )
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            || matches!(
                self.code(),
                Some("NoSuchBucket" | "NoSuchKey" | "NotFound" | "NoSuchVersion")
            )
    }
}

/// Classifies an SDK error (any service).
pub fn classify<E>(e: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            Failure::NoAnswer(DisplayErrorContext(e).to_string())
        }
        SdkError::ServiceError(se) => Failure::Service {
            status: Some(se.raw().status().as_u16()),
            code: se.err().code().map(str::to_string),
            message: se.err().message().unwrap_or_default().to_string(),
        },
        SdkError::ResponseError(_) => Failure::Service {
            status: e.raw_response().map(|r| r.status().as_u16()),
            code: None,
            message: DisplayErrorContext(e).to_string(),
        },
        _ => Failure::Other(DisplayErrorContext(e).to_string()),
    }
}

/// The generic error for a failed call.
pub fn aws_error<E>(
    service: &'static str,
    op: &'static str,
    target: impl Into<String>,
    e: &SdkError<E, HttpResponse>,
) -> AgentError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    AgentError::Aws {
        service,
        op,
        target: target.into(),
        why: classify(e).text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rstest::rstest;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        aws: AwsArgs,
    }

    fn parse(args: &[&str]) -> AwsArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().aws
    }

    #[rstest]
    #[case(&["--endpoint-url", "http://127.0.0.1:4566"], true)]
    #[case(&["--endpoint-url", "http://127.0.0.1:4566", "--force-path-style", "false"], false)]
    #[case(&["--endpoint-url", "http://127.0.0.1:4566", "--force-path-style"], true)]
    #[case(&["--endpoint-url", "", "--force-path-style=true"], true)]
    #[case(&["--endpoint-url", ""], false)]
    fn path_style_defaults_follow_the_endpoint(#[case] args: &[&str], #[case] expected: bool) {
        assert_eq!(parse(args).path_style(), expected);
    }

    #[test]
    fn endpoint_description() {
        let a = parse(&["--endpoint-url", " ", "--region", "eu-west-1"]);
        assert_eq!(a.endpoint(), None);
        assert_eq!(a.describe_endpoint(), "AWS (eu-west-1)");
    }

    #[rstest]
    #[case(Some("InvalidAccessKeyId"), Some(403), true, false)]
    #[case(Some("SignatureDoesNotMatch"), Some(403), true, false)]
    #[case(Some("AccessDenied"), Some(403), false, false)]
    #[case(Some("NoSuchBucket"), Some(404), false, true)]
    #[case(None, Some(404), false, true)]
    fn failure_kinds(
        #[case] code: Option<&str>,
        #[case] status: Option<u16>,
        #[case] auth: bool,
        #[case] missing: bool,
    ) {
        let f = Failure::Service {
            status,
            code: code.map(str::to_string),
            message: "m".into(),
        };
        assert_eq!(f.is_auth(), auth);
        assert_eq!(f.is_not_found(), missing);
        assert!(f.text().contains("(HTTP"));
    }

    #[test]
    fn account_ids_are_twelve_digits() {
        assert_eq!(account_id(" 123456789012 ").unwrap(), "123456789012");
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "arn:aws:iam::1",
        ] {
            assert!(account_id(bad).is_err(), "{bad}");
        }
        let a = parse(&["--expected-owner", "111122223333"]);
        assert_eq!(a.expected_owner.as_deref(), Some("111122223333"));
        assert!(T::try_parse_from(["t", "--expected-owner", "me"]).is_err());
    }
}
