//! Pre-flight checks, in order, each with its own exit code: the source directory is there
//! and readable (3), credentials can be found (5), the endpoint answers (4) and accepts them
//! (5), the bucket exists (6) and may be used (7). A backup also warns (never fails) when
//! no lifecycle rule aborts incomplete multipart uploads under its prefix: an upload the
//! agent could not abort (a SIGKILL, a crash) would otherwise be billed forever.

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
                why: "access denied (HeadBucket answered 403)".into(),
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

/// Runs every AWS-side check.
pub async fn aws_side(aws: &Aws, bucket_name: &str) -> Result<(), AgentError> {
    endpoint_and_credentials(aws).await?;
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
