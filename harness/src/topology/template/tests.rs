//! The templates' tests: the drift test, the size limit, references, settings.

use super::*;

fn spec() -> TopologySpec {
    TopologySpec::load(&TopologySpec::default_path()).expect("topology")
}

fn both() -> Vec<(StackPart, Value)> {
    let spec = spec();
    let seed = spec.profile("seed").expect("seed profile").clone();
    StackPart::ALL
        .into_iter()
        .map(|p| (p, template(&spec, &seed, p)))
        .collect()
}

/// The drift test: the committed files are what the topology file gives (regenerate
/// with `make template`).
#[test]
fn committed_templates_match_the_topology() {
    let spec = spec();
    let seed = spec.profile("seed").expect("seed profile");
    for part in StackPart::ALL {
        let path = default_dir().join(part.file_name());
        let committed = std::fs::read_to_string(&path).expect("committed template");
        assert!(
            committed == render(&spec, seed, part),
            "{} differs from fixtures/topology.toml: run `make template` and review the diff",
            path.display()
        );
    }
}

/// CreateStack takes a `TemplateBody` of at most 51,200 bytes (CloudFormation API
/// Reference, `CreateStack`); the gate sends the body.
#[test]
fn templates_fit_a_template_body() {
    let spec = spec();
    let seed = spec.profile("seed").expect("seed profile");
    for part in StackPart::ALL {
        let len = render(&spec, seed, part).len();
        assert!(len <= 51_200, "{}: {len} bytes", part.file_name());
    }
}

fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        Value::Object(o) => o.values().for_each(|x| walk(x, out)),
        _ => {}
    }
}

/// Every `Ref`, `Fn::GetAtt` and `${...}` names a parameter, a resource or a pseudo
/// parameter, and every `Condition` is declared: what CloudFormation checks before it
/// creates anything.
#[test]
fn every_reference_resolves() {
    for (part, doc) in both() {
        let resources = doc["Resources"].as_object().expect("resources");
        let params = doc["Parameters"].as_object().expect("parameters");
        let known = |name: &str| {
            resources.contains_key(name) || params.contains_key(name) || name.starts_with("AWS::")
        };
        let mut all = Vec::new();
        walk(&doc, &mut all);
        let mut refs = 0;
        for v in all {
            if let Some(r) = v.get("Ref").and_then(Value::as_str) {
                assert!(known(r), "{part:?}: Ref {r}");
                refs += 1;
            }
            if let Some(g) = v.get("Fn::GetAtt").and_then(Value::as_array) {
                let r = g[0].as_str().expect("a logical id");
                assert!(resources.contains_key(r), "{part:?}: GetAtt {r}");
                refs += 1;
            }
            if let Some(s) = v.get("Fn::Sub").and_then(Value::as_str) {
                for piece in s.split("${").skip(1) {
                    let name = piece.split('}').next().expect("a closing brace");
                    let name = name.split('.').next().expect("a name");
                    assert!(known(name), "{part:?}: ${{{name}}} in {s}");
                    refs += 1;
                }
            }
        }
        assert!(refs > 10, "{part:?}: {refs} references");
        let conditions = doc["Conditions"].as_object();
        for (id, r) in resources {
            if let Some(c) = r.get("Condition").and_then(Value::as_str) {
                assert!(
                    conditions.is_some_and(|cs| cs.contains_key(c)),
                    "{id}: condition {c}"
                );
            }
        }
    }
}

/// The settings the gate's broken-template tests break, as the topology file sets them:
/// both source queues redrive to their DLQs, every bucket blocks public access and is
/// versioned (the ledger is unversioned bookkeeping), every mapping reports batch item
/// failures.
#[test]
fn the_templates_carry_the_topologys_settings() {
    let spec = spec();
    let (_, primary) = both().pop().expect("primary");
    let r = &primary["Resources"];
    for (queue, dlq) in [
        ("ValidationQueue", "ValidationDlq"),
        ("FailureQueue", "FailureDlq"),
    ] {
        let redrive = &r[queue]["Properties"]["RedrivePolicy"];
        assert_eq!(redrive["deadLetterTargetArn"]["Fn::GetAtt"][0], dlq);
        assert_eq!(redrive["maxReceiveCount"], spec.queues.max_receive_count);
    }
    let mut mappings = 0;
    let mut buckets = 0;
    for (_, doc) in both() {
        for (id, res) in doc["Resources"].as_object().expect("resources") {
            let p = &res["Properties"];
            match res["Type"].as_str() {
                Some("AWS::Lambda::EventSourceMapping") => {
                    mappings += 1;
                    assert_eq!(
                        p["FunctionResponseTypes"],
                        json!(["ReportBatchItemFailures"]),
                        "{id}"
                    );
                    assert_eq!(p["BatchSize"], spec.queues.batch_size, "{id}");
                }
                Some("AWS::S3::Bucket") => {
                    buckets += 1;
                    for flag in [
                        "BlockPublicAcls",
                        "IgnorePublicAcls",
                        "BlockPublicPolicy",
                        "RestrictPublicBuckets",
                    ] {
                        assert_eq!(
                            p["PublicAccessBlockConfiguration"][flag], true,
                            "{id} {flag}"
                        );
                    }
                    assert_eq!(
                        p["VersioningConfiguration"]["Status"] == "Enabled",
                        id != "AlertLedgerBucket",
                        "{id}"
                    );
                }
                _ => {}
            }
        }
    }
    assert_eq!(mappings, crate::topology::MAPPINGS.len());
    assert_eq!(
        buckets,
        3 * (1 + spec.replication.destinations as usize) + 1
    );
}

/// The template's replication rules are the rules the harness replicator applies on
/// local engines (both come from `replication_config`).
#[test]
fn replication_rules_are_the_replicators() {
    let spec = spec();
    let n = placeholder_names(&spec);
    let (_, primary) = both().pop().expect("primary");
    for b in &n.buckets {
        let config = crate::topology::provision::replication_config(&spec, b, String::new(), "k");
        let rules = &primary["Resources"][bucket_id(b, None)]["Properties"]
            ["ReplicationConfiguration"]["Rules"];
        let rules = rules.as_array().expect("rules");
        assert_eq!(rules.len(), config.rules.len());
        for (t, c) in rules.iter().zip(&config.rules) {
            assert_eq!(t["Id"], c.id.as_str());
            assert_eq!(t["Priority"], c.priority);
            assert_eq!(t["Filter"]["Prefix"], c.prefix.as_str());
            assert_eq!(
                t["Destination"]["Bucket"]["Fn::Sub"],
                format!("arn:aws:s3:::{}", c.destination)
            );
            assert_eq!(
                t["DeleteMarkerReplication"]["Status"] == "Enabled",
                c.delete_markers
            );
            assert_eq!(
                t.get("SourceSelectionCriteria").is_some(),
                c.replica_kms_key.is_some()
            );
        }
    }
}

/// A template value for run `suffix` with the parameters at their defaults: `Ref`s of
/// parameters and `Fn::Sub` of names resolved; `Ref`s of resources become `<id>`.
fn resolved(doc: &Value, v: &Value, suffix: &str) -> String {
    let params = &doc["Parameters"];
    let param = |name: &str| -> String {
        match name {
            "Suffix" => suffix.to_string(),
            _ => match &params[name]["Default"] {
                Value::String(s) => s.clone(),
                Value::Null => format!("<{name}>"),
                other => other.to_string(),
            },
        }
    };
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    if let Some(r) = v.get("Ref").and_then(Value::as_str) {
        return param(r);
    }
    let s = v["Fn::Sub"].as_str().expect("a string, a Ref or a Fn::Sub");
    let mut out = s.to_string();
    for name in ["Environment", "Suffix"] {
        out = out.replace(&format!("${{{name}}}"), &param(name));
    }
    out
}

/// The functions read every variable the template sets (a misspelt name would silently
/// fall back to a default), and what they read from it is the topology's: the configuration
/// direct provisioning gives the in-process functions.
#[test]
fn the_functions_read_the_templates_environment_as_the_topology_says() {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    let spec = spec();
    let seed = spec.profile("seed").expect("seed").clone();
    let (_, primary) = both().pop().expect("primary");
    let env_of = |id: &str| -> BTreeMap<String, String> {
        primary["Resources"][id]["Properties"]["Environment"]["Variables"]
            .as_object()
            .expect("variables")
            .iter()
            .map(|(k, v)| (k.clone(), resolved(&primary, v, "t3st01")))
            .collect()
    };

    let env = env_of("ValidatorFunction");
    let asked = RefCell::new(BTreeSet::new());
    let config = checksum_validator::config::ValidatorConfig::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_string());
        env.get(name).cloned()
    })
    .expect("the validator accepts the template's environment");
    let unread: Vec<&String> = env
        .keys()
        .filter(|k| !asked.borrow().contains(*k))
        .collect();
    assert!(unread.is_empty(), "the validator never reads {unread:?}");
    let names = Names::new(&spec, "t3st01");
    let map: std::collections::HashMap<String, String> = names
        .buckets
        .iter()
        .map(|b| (b.primary.clone(), b.replica.clone()))
        .collect();
    assert_eq!(config.replica_bucket_map, map);
    assert_eq!(
        config.replica_region.as_deref(),
        Some(spec.replica_region.as_str())
    );
    assert_eq!(config.lag_budget.as_secs_f64(), seed.lag_budget_seconds);
    assert_eq!(config.retry_base.as_secs_f64(), seed.retry_base_seconds);
    assert_eq!(config.retry_max.as_secs_f64(), seed.retry_max_seconds);
    assert_eq!(config.max_receive_count, spec.queues.max_receive_count);
    assert_eq!(config.failure_queue_url.as_deref(), Some("<FailureQueue>"));

    let env = env_of("NotifierFunction");
    let asked = RefCell::new(BTreeSet::new());
    let config = failure_notifier::handler::NotifierConfig::from_vars(|name| {
        asked.borrow_mut().insert(name.to_string());
        env.get(name).cloned()
    })
    .expect("the notifier accepts the template's environment");
    let unread: Vec<&String> = env
        .keys()
        .filter(|k| !asked.borrow().contains(*k))
        .collect();
    assert!(unread.is_empty(), "the notifier never reads {unread:?}");
    assert_eq!(config.project, spec.project);
    assert_eq!(
        config.ledger_bucket.as_deref(),
        Some(names.alert_ledger.as_str())
    );
    assert_eq!(config.topic_arn, "<FailureTopic>");
}
