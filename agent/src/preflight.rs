//! Pre-flight checks, in order, each with its own exit code: the source directory is there
//! and readable (3), credentials can be found (5), the endpoint answers (4) and accepts them
//! (5), the bucket exists (6) and may be used (7). A backup also warns (never fails) when
//! no lifecycle rule aborts incomplete multipart uploads under its prefix: an upload the
//! agent could not abort (a SIGKILL, a crash) would otherwise be billed forever.
//!
//! **Bucket owner.** With `--expected-owner` (`AUTOBACKUP_BUCKET_OWNER`) every S3 request
//! names the account that must own the bucket ([`crate::aws::ExpectedOwner`]), and
//! pre-flight compares it with the caller's account from `sts:GetCallerIdentity`
//! ([`owner`]): another account only gets a warning, since a backup bucket in a separate
//! account is a legitimate (and recommended) layout; a failing STS call is a warning too.
//! Without `--expected-owner` nothing is compared and no STS call is made: the caller's
//! account is *not* used as a default owner, because that would refuse every existing
//! cross-account bucket (S3 answers 403) for a check the operator did not ask for.
//!
//! Floor 5: may import modules of floors 0 to 4 only; it imports `aws`, `cost::lifecycle`,
//! `errors`, `s3`, `test_support`.

use std::path::Path;

use aws_sdk_s3::config::ProvideCredentials;

use crate::aws::{classify, Aws, Failure};
use crate::errors::AgentError;

/// The source must be a readable directory.
pub fn source(path: &Path) -> Result<(), AgentError> {
    let err = |why: String| AgentError::Source {
        path: path.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_dir() {
        return Err(err("not a directory".into()));
    }
    std::fs::read_dir(path)
        .map_err(|e| err(format!("cannot be read: {e}")))?
        .next()
        .transpose()
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    Ok(())
}

/// Credentials resolve, the endpoint answers and accepts them.
pub async fn endpoint_and_credentials(aws: &Aws) -> Result<(), AgentError> {
    let provider = aws
        .sdk
        .credentials_provider()
        .ok_or_else(|| AgentError::Credentials {
            why: "no credentials provider is configured".into(),
        })?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| AgentError::Credentials {
            why: format!(
                "none found ({}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
        })?;
    match aws.s3.list_buckets().max_buckets(1).send().await {
        Ok(_) => Ok(()),
        Err(e) => match classify(&e) {
            Failure::NoAnswer(why) => Err(AgentError::Unreachable {
                endpoint: aws.endpoint.clone(),
                why,
            }),
            f if f.is_auth() => Err(AgentError::Credentials {
                why: format!("rejected by {}: {}", aws.endpoint, f.text()),
            }),
            // Authenticated but not allowed to list buckets: fine for a backup role.
            f if f.code() == Some("AccessDenied") => Ok(()),
            f => Err(AgentError::Aws {
                service: "S3",
                op: "ListBuckets",
                target: aws.endpoint.clone(),
                why: f.text(),
            }),
        },
    }
}

/// The bucket exists and may be used.
pub async fn bucket(aws: &Aws, bucket: &str) -> Result<(), AgentError> {
    match aws.s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => match classify(&e) {
            Failure::NoAnswer(why) => Err(AgentError::Unreachable {
                endpoint: aws.endpoint.clone(),
                why,
            }),
            f if f.is_not_found() => Err(AgentError::NoBucket {
                bucket: bucket.to_string(),
            }),
            f if f.status() == Some(403) => Err(AgentError::BucketDenied {
                bucket: bucket.to_string(),
                why: match &aws.expected_owner {
                    Some(a) => format!("access denied (HeadBucket answered 403; S3 answers so too when account {a}, the expected owner, does not own the bucket)"),
                    None => "access denied (HeadBucket answered 403)".into(),
                },
            }),
            f if f.status() == Some(301) || f.status() == Some(400) => {
                Err(AgentError::BucketDenied {
                    bucket: bucket.to_string(),
                    why: format!("the bucket is not usable from this region: {}", f.text()),
                })
            }
            f => Err(AgentError::Aws {
                service: "S3",
                op: "HeadBucket",
                target: bucket.to_string(),
                why: f.text(),
            }),
        },
    }
}

/// Whether an enabled lifecycle rule with `AbortIncompleteMultipartUpload` covers every key
/// under `prefix`.
pub fn abort_rule_covers(rules: &[crate::cost::lifecycle::Rule], prefix: &str) -> bool {
    rules.iter().any(|r| {
        r.abort_incomplete_multipart_days.is_some()
            && r.covers(prefix) == crate::cost::lifecycle::Coverage::All
    })
}

/// Warns when no lifecycle rule aborts incomplete multipart uploads under `prefix` (or
/// the rules cannot be read); returns whether one does.
pub async fn abort_rule(aws: &Aws, bucket: &str, prefix: &str) -> bool {
    match crate::s3::lifecycle_rules(&aws.s3, bucket).await {
        Ok(rules) if abort_rule_covers(&rules, prefix) => true,
        Ok(_) => {
            tracing::warn!(bucket, prefix, "no enabled lifecycle rule with AbortIncompleteMultipartUpload covers the backup prefix: a multipart upload the agent cannot abort (killed, crashed) stays billed until someone aborts it");
            false
        }
        Err(e) => {
            tracing::warn!(
                bucket,
                prefix,
                "cannot check for an AbortIncompleteMultipartUpload lifecycle rule: {e}"
            );
            false
        }
    }
}

/// What [`owner`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerCheck {
    /// No expected owner is configured: nothing compared, no STS call made.
    NotConfigured,
    /// The expected owner is the caller's own account.
    CallersAccount,
    /// The expected owner is another account than the caller's (a cross-account backup
    /// bucket): allowed, and warned about in case it is a typo.
    OtherAccount { expected: String, caller: String },
    /// `GetCallerIdentity` failed or named no account: not compared.
    Unknown(String),
}

/// Compares the configured expected bucket owner with the caller's account
/// (`sts:GetCallerIdentity`, which needs no IAM permission: "GetCallerIdentity",
/// https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html).
/// Never fails: a difference or an STS failure is logged as a warning.
pub async fn owner(aws: &Aws) -> OwnerCheck {
    let Some(expected) = aws.expected_owner.as_deref() else {
        return OwnerCheck::NotConfigured;
    };
    let check = match aws.sts.get_caller_identity().send().await {
        Ok(id) => match id.account() {
            Some(caller) if caller == expected => OwnerCheck::CallersAccount,
            Some(caller) => OwnerCheck::OtherAccount {
                expected: expected.to_string(),
                caller: caller.to_string(),
            },
            None => OwnerCheck::Unknown("GetCallerIdentity named no account".into()),
        },
        Err(e) => OwnerCheck::Unknown(classify(&e).text()),
    };
    match &check {
        OwnerCheck::CallersAccount => {
            tracing::info!(account = expected, "the expected bucket owner is the caller's account")
        }
        OwnerCheck::OtherAccount { expected, caller } => tracing::warn!(
            expected_owner = %expected,
            caller_account = %caller,
            "--expected-owner names another account than the caller's: fine for a cross-account backup bucket; S3 refuses every request (403) if that account does not own the bucket"
        ),
        OwnerCheck::Unknown(why) => tracing::warn!(
            expected_owner = expected,
            "cannot compare the expected bucket owner with the caller's account (sts:GetCallerIdentity: {why}); S3 still checks the owner on every request"
        ),
        OwnerCheck::NotConfigured => {}
    }
    check
}

/// Runs every AWS-side check.
pub async fn aws_side(aws: &Aws, bucket_name: &str) -> Result<(), AgentError> {
    endpoint_and_credentials(aws).await?;
    owner(aws).await;
    bucket(aws, bucket_name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_checks() {
        let dir = tempfile::tempdir().unwrap();
        assert!(source(dir.path()).is_ok());
        let missing = source(&dir.path().join("nope")).unwrap_err();
        assert_eq!(missing.exit_code(), 3);
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let not_dir = source(&file).unwrap_err();
        assert!(not_dir.to_string().contains("not a directory"));
        assert_eq!(not_dir.exit_code(), 3);
    }

    use crate::test_support::stub::{happy, Reply, Seen, StubS3};

    fn caller_is(account: &'static str) -> impl Fn(&Seen, &[Seen]) -> Reply + Send + Sync {
        move |s: &Seen, earlier: &[Seen]| {
            if s.op() == "GetCallerIdentity" {
                Reply::xml(
                    200,
                    format!(
                        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                         <GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/agent</Arn>\
                         <UserId>AIDAEXAMPLE</UserId><Account>{account}</Account></GetCallerIdentityResult>\
                         <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                    ),
                )
            } else {
                happy(s, earlier)
            }
        }
    }

    /// Finding 21: the expected owner is compared with the caller's account; another
    /// account (a cross-account bucket) is reported but does not fail pre-flight.
    #[tokio::test]
    async fn the_expected_owner_is_compared_with_the_callers_account() {
        let stub = StubS3::start(caller_is("111122223333")).await;
        let aws = stub.aws().await;

        // Not configured: nothing compared, no STS call.
        assert_eq!(owner(&aws).await, OwnerCheck::NotConfigured);
        aws_side(&aws, "b").await.unwrap();
        assert!(stub.of("GetCallerIdentity").is_empty(), "{:?}", stub.seen());

        let mine = aws.with_expected_owner(Some("111122223333"));
        assert_eq!(owner(&mine).await, OwnerCheck::CallersAccount);

        let other = aws.with_expected_owner(Some("444455556666"));
        assert_eq!(
            owner(&other).await,
            OwnerCheck::OtherAccount {
                expected: "444455556666".into(),
                caller: "111122223333".into()
            }
        );
        // A warning, not a failure: pre-flight passes and still checks the bucket, with
        // the expected owner on HeadBucket.
        aws_side(&other, "b").await.unwrap();
        assert_eq!(stub.of("GetCallerIdentity").len(), 3);
        let heads = stub.of("HeadBucket");
        assert_eq!(
            heads
                .last()
                .and_then(|h| h.header(crate::aws::EXPECTED_OWNER_HEADER)),
            Some("444455556666")
        );
        // STS requests are not S3 requests: no owner header.
        assert!(stub
            .of("GetCallerIdentity")
            .iter()
            .all(|s| s.header(crate::aws::EXPECTED_OWNER_HEADER).is_none()));
    }

    /// Finding 21: an endpoint without STS (or a failing call) leaves the owner
    /// uncompared, with a warning; a 403 from HeadBucket names the expected owner.
    #[tokio::test]
    async fn a_failing_sts_call_does_not_fail_pre_flight() {
        let stub = StubS3::start(|s: &Seen, earlier: &[Seen]| match s.op() {
            "GetCallerIdentity" => Reply::xml(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>\
                 <Message>not here</Message></Error><RequestId>r</RequestId></ErrorResponse>",
            ),
            "HeadBucket" => Reply::status(403),
            _ => happy(s, earlier),
        })
        .await;
        let aws = stub.aws().await.with_expected_owner(Some("444455556666"));
        match owner(&aws).await {
            OwnerCheck::Unknown(why) => assert!(why.contains("InvalidAction"), "{why}"),
            other => panic!("{other:?}"),
        }
        let e = aws_side(&aws, "b").await.unwrap_err();
        assert_eq!(e.exit_code(), 7, "{e}");
        assert!(e.to_string().contains("444455556666"), "{e}");
    }

    #[test]
    fn abort_rules_must_cover_the_whole_prefix() {
        use crate::cost::lifecycle::{Filter, Rule};
        let rule = |prefix: &str, days: Option<u32>, enabled: bool| Rule {
            id: "r".into(),
            enabled,
            filter: Filter {
                prefix: prefix.into(),
                ..Default::default()
            },
            abort_incomplete_multipart_days: days,
            ..Default::default()
        };
        let p = "backups/documents/";
        assert!(abort_rule_covers(&[rule("", Some(7), true)], p));
        assert!(abort_rule_covers(&[rule("backups/", Some(1), true)], p));
        assert!(!abort_rule_covers(&[], p));
        assert!(!abort_rule_covers(&[rule("", None, true)], p));
        assert!(!abort_rule_covers(&[rule("", Some(7), false)], p));
        assert!(!abort_rule_covers(&[rule("logs/", Some(7), true)], p));
        assert!(!abort_rule_covers(
            &[rule("backups/documents/x", Some(7), true)],
            p
        ));
    }
}
