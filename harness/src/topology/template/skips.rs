//! The Checkov findings the templates skip, each with the reason a reviewer reads in the
//! resource's `Metadata` (and the Terraform module carries as `#checkov:skip`).

/// Checkov's findings this design does not follow, each with its reason (written into the
/// resource's `Metadata`, where Checkov reads skips and a reviewer sees them).
pub(super) const ACCESS_LOGGING: (&str, &str) = (
    "CKV_AWS_18",
    "Audit trail is CloudTrail data events; access logs need a log bucket per region.",
);
pub(super) const LEDGER_VERSIONING: (&str, &str) = (
    "CKV_AWS_21",
    "One-day idempotency claims, not backups; versions would outlive their expiry.",
);
pub(super) const FUNCTION_DLQ: (&str, &str) = (
    "CKV_AWS_116",
    "SQS-triggered only: failed records go to the queues' redrive DLQs.",
);
pub(super) const FUNCTION_VPC: (&str, &str) = (
    "CKV_AWS_117",
    "Calls AWS APIs only; a VPC adds NAT or endpoints and protects nothing.",
);
pub(super) const FUNCTION_CONCURRENCY: (&str, &str) = (
    "CKV_AWS_115",
    "Reserving fails in accounts at the default limit of 10; batches bound the load.",
);
pub(super) const FUNCTION_ENV_KMS: (&str, &str) = (
    "CKV_AWS_173",
    "No secrets (names, URLs, numbers); encrypted at rest by Lambda's own key.",
);
pub(super) const KMS_DEFAULT_ENCRYPTION: (&str, &str) = (
    "CKV_AWS_145",
    "SSE-S3 by default as in the seed; SSE-KMS uploads use the S3 key.",
);
pub(super) const REPLICA_EVENTS: (&str, &str) = (
    "CKV2_AWS_62",
    "Replicas are written by replication; primaries' events drive validation.",
);
pub(super) const LEDGER_EVENTS: (&str, &str) = (
    "CKV2_AWS_62",
    "The notifier's bookkeeping; nothing consumes its events.",
);
pub(super) const LEDGER_ABORT: (&str, &str) = (
    "CKV_AWS_300",
    "Only alerts/ is written, and its rule aborts incomplete uploads after a day.",
);
pub(super) const LEDGER_REPLICATION: (&str, &str) = (
    "CKV_AWS_144",
    "One-day idempotency claims: nothing to recover in another region.",
);
pub(super) const FUNCTION_SIGNING: (&str, &str) = (
    "CKV_AWS_272",
    "Zips built and hashed by harness package; no Signer profile in the seed.",
);
pub(super) const FUNCTION_TRACING: (&str, &str) = (
    "CKV_AWS_50",
    "Each decision is logged in full; X-Ray adds cost, no decision data.",
);
pub(super) const LOG_RETENTION: (&str, &str) = (
    "CKV_AWS_338",
    "30 days covers the incident window; every failure also alerts.",
);
pub(super) const LOG_GROUP_KMS: (&str, &str) = (
    "CKV_AWS_158",
    "No object content in the logs; CloudWatch Logs encrypts at rest.",
);
