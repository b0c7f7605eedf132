//! Engine gaps: the one place where the harness normalises what an engine does differently
//! from AWS, so the functions can be written to AWS's documented behaviour.
//!
//! | gap | engine | where it is handled |
//! |---|---|---|
//! | event `object.key` arrives raw, AWS form-encodes it | MiniStack | [`normalise_event_body`] (here), applied by the event source mapping before the validator sees the body |
//! | event has no `version-id` | MiniStack | the validator judges the current version and says so (`version_source: current-version`) |
//! | S3 replication stores the config but copies nothing | LocalStack | `replication::Replicator` copies versions and delete markers |
//! | replication is synchronous, so lag cannot happen | MiniStack | scenarios that control replication run the harness replicator instead (`replication::mode`) |
//! | `StartMessageMoveTask` is not implemented | MiniStack | `redrive` falls back to receive / send / delete |
//! | replicas get new version ids (AWS keeps the source's) | both | the validator matches replica versions by content when the id is unknown |
//! | the replicator cannot read a GLACIER / DEEP_ARCHIVE version (`InvalidObjectState`), where S3 replication copies it as it is written | LocalStack | [`restore_archived`] (here), called by the replicator before it reads such a version |
//! | agent: multipart uploads answer COMPOSITE to a FULL_OBJECT CRC64NVME request | MiniStack | `autobackup_agent::compat` (the agent's own one place) |

use serde_json::Value;

use super::Capabilities;

/// Restores an archived version (GLACIER, DEEP_ARCHIVE) so the harness replicator can read
/// it, and waits until the engine says the restore finished (LocalStack does at once). The
/// engine's `Restore` header on the primary is the only trace; the storage class stays.
pub async fn restore_archived(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> Result<(), String> {
    use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
    let request = RestoreRequest::builder()
        .days(1)
        .glacier_job_parameters(
            GlacierJobParameters::builder()
                .tier(Tier::Expedited)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .build();
    s3.restore_object()
        .bucket(bucket)
        .key(key)
        .version_id(version_id)
        .restore_request(request)
        .send()
        .await
        .map_err(crate::errors::sdk)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map_err(crate::errors::sdk)?;
        if head
            .restore()
            .is_some_and(|r| r.contains("ongoing-request=\"false\""))
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{bucket}/{key} ({version_id}): the engine did not finish restoring the archived version within 10 s"
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Re-encodes a raw event key the way AWS writes it (form-encoding), for engines that send
/// raw keys. Bodies that are not S3 EventBridge events are returned unchanged.
pub fn normalise_event_body(caps: &Capabilities, body: &str) -> String {
    if !caps.raw_event_keys {
        return body.to_string();
    }
    let Ok(mut v) = serde_json::from_str::<Value>(body) else {
        return body.to_string();
    };
    if v.get("source").and_then(Value::as_str) != Some("aws.s3") {
        return body.to_string();
    }
    let Some(key) = v
        .pointer("/detail/object/key")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return body.to_string();
    };
    let encoded = checksum_validator::event::encode_event_key(&key);
    if let Some(slot) = v.pointer_mut("/detail/object/key") {
        *slot = Value::String(encoded);
    }
    v.to_string()
}

/// The `Object Created` event body an engine with `caps` delivers for one object version
/// (its key encoding, with or without `version-id`), for duplicate deliveries and benchmarks.
pub async fn object_created_event(
    s3: &aws_sdk_s3::Client,
    caps: &Capabilities,
    account: &str,
    region: &str,
    bucket: &str,
    key: &str,
) -> Result<String, String> {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(crate::errors::sdk)?;
    let mut object = serde_json::json!({
        "key": if caps.raw_event_keys { key.to_string() } else { checksum_validator::event::encode_event_key(key) },
        "size": head.content_length().unwrap_or(0),
        "etag": head.e_tag().unwrap_or_default().trim_matches('"'),
        "sequencer": "0062E99A88DC407460",
    });
    if caps.event_version_ids {
        object["version-id"] = serde_json::json!(head.version_id().unwrap_or_default());
    }
    let id: String = (0..32)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect();
    Ok(serde_json::json!({
        "version": "0",
        "id": format!("{}-{}-{}-{}-{}", &id[0..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": region,
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": object,
            "request-id": "harness",
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Flavor;

    const MINI: &str =
        include_str!("../../../fixtures/engine-events/ministack-1.5.33-event-1.json");
    const LOCAL: &str =
        include_str!("../../../fixtures/engine-events/localstack-4.13.1-event-1.json");

    #[test]
    fn ministack_keys_become_what_aws_and_localstack_send() {
        let caps = Flavor::Ministack.capabilities();
        let normalised = normalise_event_body(&caps, MINI);
        let events = checksum_validator::event::parse_body(&normalised).unwrap();
        let from_localstack = checksum_validator::event::parse_body(LOCAL).unwrap();
        assert_eq!(events[0].key, "reports/Q1 summary+final é.txt");
        assert_eq!(events[0].key, from_localstack[0].key);
    }

    #[test]
    fn other_bodies_pass_through() {
        let caps = Flavor::Ministack.capabilities();
        assert_eq!(normalise_event_body(&caps, "not json"), "not json");
        assert_eq!(
            normalise_event_body(&Flavor::Localstack.capabilities(), LOCAL),
            LOCAL
        );
    }
}
