//! `harness engine probe`: what an engine does, measured instead of assumed.
//!
//! The probe provisions the real topology on the engine (replication configured on the
//! engine itself), then watches what one upload does: whether its event reaches the
//! validation queue, carries a `version-id` and how it writes the key; whether the engine
//! copies it to the replica, keeps the version id and reports a replication status;
//! whether an upload without a checksum gets S3's default CRC64NVME; whether conditional
//! writes (the notifier's ledger) and `StartMessageMoveTask` work. Everything it creates
//! is torn down. An engine that cannot host the topology gets the first call that failed.
//!
//! The capabilities the harness uses for an `external` engine come from this probe (a
//! known engine's are the measured ones recorded in [`Flavor::capabilities`], which
//! the probe re-checks: a difference is printed).
//!
//! Floor 4: may import floors 0-3 (ground, engine, topology, fidelity).

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::Clients;
use crate::engine::gaps::{self, KeyEncoding};
use crate::engine::{
    is_loopback, Capabilities, Engine, EngineError, EngineKind, Flavor, StartOptions,
};
use crate::topology::provision::{provision, ProvisionOptions};
use crate::topology::{new_suffix, teardown::teardown, TopologySpec};

/// Starts (or attaches to) an engine of `kind` ([`crate::engine::start`]), then measures an
/// unknown emulator on this machine instead of assuming it is AWS.
pub async fn start(kind: EngineKind, opts: &StartOptions) -> Result<Engine, EngineError> {
    let mut engine = crate::engine::start(kind, opts).await?;
    // An unknown emulator on this machine is measured, not assumed to be AWS (real
    // AWS is never on loopback, and is not probed).
    if engine.flavor == Flavor::Aws && is_loopback(&engine.endpoint) && !opts.skip_probe {
        let spec =
            crate::topology::TopologySpec::load(&crate::topology::TopologySpec::default_path())
                .map_err(|e| EngineError::CannotHost {
                    endpoint: engine.endpoint.clone(),
                    call: format!("loading the topology for the probe: {e}"),
                })?;
        let report = probe(&engine, &spec).await;
        eprint!("{}", report.render());
        match (report.cannot_host, report.measured) {
            (Some(call), _) => {
                return Err(EngineError::CannotHost {
                    endpoint: engine.endpoint,
                    call,
                })
            }
            (None, None) => {
                return Err(EngineError::CannotHost {
                    endpoint: engine.endpoint,
                    call: "the probe measured nothing".into(),
                })
            }
            (None, Some(caps)) => engine.probed = Some(caps),
        }
    }
    Ok(engine)
}

/// The key the probe uploads: a space, a plus and a non-ASCII letter tell the encodings apart.
pub const PROBE_KEY: &str = "probe/a b+c é.txt";

/// One measured property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: &'static str,
    pub answer: String,
    /// The corresponding capability as the harness assumes it for this engine, when it
    /// assumes one.
    pub assumed: Option<String>,
}

/// What the probe found.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub engine: String,
    pub endpoint: String,
    /// The first provisioning call the engine failed (`step: why`), if any.
    pub cannot_host: Option<String>,
    pub findings: Vec<Finding>,
    /// Capabilities as measured (`None` when the topology could not be provisioned).
    pub measured: Option<Capabilities>,
    pub took: Duration,
}

impl ProbeReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "engine probe: {} at {} ({:.1}s)\n",
            self.engine,
            self.endpoint,
            self.took.as_secs_f64()
        );
        if let Some(why) = &self.cannot_host {
            s.push_str(&format!(
                "  cannot host the topology: the first failing call was {why}\n"
            ));
            return s;
        }
        let width = self
            .findings
            .iter()
            .map(|f| f.what.len())
            .max()
            .unwrap_or(0);
        for f in &self.findings {
            let differs = match &f.assumed {
                Some(a) if *a != f.answer => format!("   (harness assumed: {a})"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "  {:<width$}  {}{differs}\n",
                f.what,
                f.answer,
                width = width
            ));
        }
        s
    }

    /// Whether every assumption of the harness held.
    pub fn assumptions_hold(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.assumed.as_ref().is_none_or(|a| *a == f.answer))
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// Probes `engine` (its own clients, no fidelity layer).
pub async fn probe(engine: &Engine, spec: &TopologySpec) -> ProbeReport {
    let started = Instant::now();
    let clients = engine
        .clients(&spec.primary_region, &spec.replica_region)
        .await;
    let assumed = match engine.flavor {
        Flavor::Aws => None,
        f => Some(f.capabilities()),
    };
    let mut report = ProbeReport {
        engine: engine.kind.to_string(),
        endpoint: engine.endpoint.clone(),
        cannot_host: None,
        findings: Vec::new(),
        measured: None,
        took: Duration::ZERO,
    };
    let suffix = format!("p{}", &new_suffix()[..5]);
    let timing = spec.profile("fast").cloned().unwrap_or_else(|| {
        spec.profiles
            .values()
            .next()
            .cloned()
            .expect("a topology has profiles")
    });
    let provisioned = tokio::time::timeout(
        Duration::from_secs(120),
        provision(
            &clients,
            spec,
            &suffix,
            &ProvisionOptions {
                timing,
                replication_on_engine: true,
                via: crate::topology::provision::Via::Direct,
                stack: Default::default(),
            },
        ),
    )
    .await;
    let topology = match provisioned {
        Ok(Ok((t, _))) => t,
        Ok(Err(e)) => {
            report.cannot_host = Some(format!("{}: {}", e.step, e.why));
            teardown(&clients, spec, &suffix).await;
            report.took = started.elapsed();
            return report;
        }
        Err(_) => {
            report.cannot_host = Some("provisioning: no answer within 120 s".into());
            teardown(&clients, spec, &suffix).await;
            report.took = started.elapsed();
            return report;
        }
    };
    let measured = measure(&clients, &topology, &mut report, assumed.as_ref()).await;
    report.measured = Some(measured);
    teardown(&clients, spec, &suffix).await;
    report.took = started.elapsed();
    report
}

async fn measure(
    clients: &Clients,
    topology: &crate::topology::Topology,
    report: &mut ProbeReport,
    assumed: Option<&Capabilities>,
) -> Capabilities {
    let b = &topology.buckets()[0];
    let mut push = |what: &'static str, answer: String, assumed: Option<String>| {
        report.findings.push(Finding {
            what,
            answer,
            assumed,
        })
    };

    // One upload, with the SDK's default checksum.
    let put = clients
        .s3
        .put_object()
        .bucket(&b.primary)
        .key(PROBE_KEY)
        .body(ByteStream::from_static(b"probe"))
        .send()
        .await;
    let source_version = put
        .as_ref()
        .ok()
        .and_then(|o| o.version_id().map(str::to_string));

    // Its event, read raw from the validation queue.
    let mut event = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while event.is_none() && Instant::now() < deadline {
        let got = clients
            .sqs
            .receive_message()
            .queue_url(&topology.queues.validation.url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .send()
            .await;
        let Ok(got) = got else { break };
        for m in got.messages() {
            if let Some(f) = m.body().and_then(gaps::event_fields) {
                event = Some(f);
            }
        }
    }
    let events = event.is_some();
    push(
        "S3 events reach the queue (EventBridge rule)",
        yes_no(events),
        assumed.map(|_| "yes".into()),
    );
    let version_ids = event.as_ref().is_some_and(|e| e.version_id.is_some());
    push(
        "events carry version-id",
        if events {
            yes_no(version_ids)
        } else {
            "unknown (no event)".into()
        },
        assumed.map(|c| yes_no(c.event_version_ids)),
    );
    let encoding = event.as_ref().and_then(|e| {
        [KeyEncoding::Raw, KeyEncoding::Percent, KeyEncoding::Form]
            .into_iter()
            .find(|enc| gaps::encode_key(PROBE_KEY, *enc) == e.key)
    });
    push(
        "event key encoding",
        match (&event, encoding) {
            (None, _) => "unknown (no event)".into(),
            (Some(_), Some(e)) => format!("{e:?}").to_lowercase(),
            (Some(e), None) => format!("other ({:?})", e.key),
        },
        assumed.map(|c| if c.raw_event_keys { "raw" } else { "percent" }.to_string()),
    );

    // Replication as the engine does it.
    let mut replica_version = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while replica_version.is_none() && Instant::now() < deadline {
        if let Ok(h) = clients
            .s3_replica
            .head_object()
            .bucket(&b.replica)
            .key(PROBE_KEY)
            .send()
            .await
        {
            replica_version = Some(h.version_id().unwrap_or_default().to_string());
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let copies = replica_version.is_some();
    push(
        "replication copies objects",
        yes_no(copies),
        assumed.map(|c| yes_no(c.native_replication)),
    );
    let same_id = copies && replica_version == source_version;
    push(
        "replicas keep the source's version id",
        if copies {
            yes_no(same_id)
        } else {
            "unknown (nothing copied)".into()
        },
        None,
    );
    let status = clients
        .s3
        .head_object()
        .bucket(&b.primary)
        .key(PROBE_KEY)
        .send()
        .await
        .ok()
        .and_then(|h| h.replication_status().map(|s| s.as_str().to_string()));
    push(
        "x-amz-replication-status on the source",
        status.clone().unwrap_or_else(|| "none".into()),
        None,
    );

    // An upload without a checksum: does the engine store S3's default CRC64NVME?
    let plain = crate::aws::without_checksums(&clients.s3);
    let default_checksum = match plain
        .put_object()
        .bucket(&b.primary)
        .key("probe/no-checksum.txt")
        .body(ByteStream::from_static(b"no checksum"))
        .send()
        .await
    {
        Ok(_) => clients
            .s3
            .head_object()
            .bucket(&b.primary)
            .key("probe/no-checksum.txt")
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .ok()
            .map(|h| h.checksum_crc64_nvme().is_some()),
        Err(_) => None,
    };
    push(
        "default CRC64NVME for uploads without a checksum",
        default_checksum
            .map(yes_no)
            .unwrap_or_else(|| "unknown (upload failed)".into()),
        None,
    );

    // Conditional writes, which the notifier's ledger relies on.
    let conditional = {
        let put = |body: &'static [u8]| {
            clients
                .s3
                .put_object()
                .bucket(&topology.names.alert_ledger)
                .key("alerts/probe")
                .if_none_match("*")
                .body(ByteStream::from_static(body))
                .send()
        };
        match (put(b"1").await, put(b"2").await) {
            (Ok(_), Err(e)) => e.raw_response().map(|r| r.status().as_u16()) == Some(412),
            _ => false,
        }
    };
    push(
        "conditional writes (If-None-Match: *)",
        yes_no(conditional),
        None,
    );

    // StartMessageMoveTask (the DLQ redrive).
    let move_task = clients
        .sqs
        .start_message_move_task()
        .source_arn(&topology.queues.validation_dlq.arn)
        .destination_arn(&topology.queues.validation.arn)
        .send()
        .await;
    let move_task = match &move_task {
        Ok(_) => true,
        Err(e) => {
            let text = crate::errors::sdk(e);
            // An empty DLQ may refuse a task; only an unknown operation means it is missing.
            !(text.contains("not implemented")
                || text.contains("NotImplemented")
                || text.contains("UnknownOperation")
                || text.contains("InvalidAction")
                || text.contains("501"))
        }
    };
    push(
        "StartMessageMoveTask",
        yes_no(move_task),
        assumed.map(|c| yes_no(c.message_move_task)),
    );

    Capabilities {
        native_replication: copies,
        faithful_replication: copies && same_id && status.is_some(),
        raw_event_keys: encoding == Some(KeyEncoding::Raw),
        message_move_task: move_task,
        event_version_ids: version_ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_key_tells_every_encoding_apart() {
        let all: Vec<String> = [KeyEncoding::Raw, KeyEncoding::Percent, KeyEncoding::Form]
            .into_iter()
            .map(|e| gaps::encode_key(PROBE_KEY, e))
            .collect();
        assert_ne!(all[0], all[1]);
        assert_ne!(all[1], all[2]);
        assert_ne!(all[0], all[2]);
    }

    #[test]
    fn a_differing_assumption_is_shown() {
        let r = ProbeReport {
            engine: "x".into(),
            endpoint: "http://127.0.0.1:1".into(),
            cannot_host: None,
            findings: vec![Finding {
                what: "events carry version-id",
                answer: "no".into(),
                assumed: Some("yes".into()),
            }],
            measured: None,
            took: Duration::ZERO,
        };
        assert!(!r.assumptions_hold());
        assert!(r.render().contains("(harness assumed: yes)"));
    }
}
