//! End to end against real local engines started through the harness (feature `e2e`):
//! the `autobackup` binary backs up a tree with awkward names six times into a versioned
//! bucket with a lifecycle rule (keep = 5), restores it byte for byte (latest, by key, by
//! the version id of a rotated-away backup), refuses an overwrite and a tampered archive,
//! flags a truncated backup, fails pre-flight with the documented exit codes, analyses the
//! cost, and sends its notifications to SNS (read back through an SQS subscription).
//! The same test runs on MiniStack and LocalStack, one engine at a time.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use autobackup_agent::archive::{self, ArchiveOptions};
use autobackup_agent::layout::{self, meta, Category};
use autobackup_agent::upload::{self, UploadSpec};
use aws_sdk_s3::types as s3t;
use harness::aws::Clients;
use harness::engine::{EngineKind, StartOptions};
use harness::probe;
use serde_json::Value;

static ONE_ENGINE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn on_engine(kind: EngineKind) {
    let _guard = ONE_ENGINE_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(roundtrip(kind));
}

#[test]
fn roundtrip_on_ministack() {
    on_engine(EngineKind::Ministack);
}

#[test]
fn roundtrip_on_localstack() {
    on_engine(EngineKind::Localstack);
}

/// A tree entry, for byte-for-byte comparison.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(Vec<u8>, u32),
    Link(PathBuf),
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            let node = if m.file_type().is_symlink() {
                Node::Link(std::fs::read_link(e.path()).unwrap())
            } else if m.is_dir() {
                stack.push(r.clone());
                Node::Dir(mode)
            } else {
                Node::File(std::fs::read(e.path()).unwrap(), mode)
            };
            out.insert(r, node);
        }
    }
    out
}

/// Deterministic incompressible bytes.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The awkward tree; returns (regular files, their total size).
fn awkward_tree(root: &Path) -> (u64, u64) {
    let files: Vec<(PathBuf, Vec<u8>)> = vec![
        (
            "with space/file name.txt".into(),
            b"spaces in both names\n".to_vec(),
        ),
        (
            "ünïcødé/日本語/テスト ファイル.txt".into(),
            "こんにちは, wörld\n".as_bytes().to_vec(),
        ),
        ("empty.bin".into(), Vec::new()),
        ("nested/a/b/c/d/e/deep.txt".into(), b"deep\n".to_vec()),
        (
            PathBuf::from("nested/long").join(format!("{}.txt", "l".repeat(150))),
            b"a name longer than 100 bytes\n".to_vec(),
        ),
        (
            "tab\tand\nnewline".into(),
            b"control characters in the name\n".to_vec(),
        ),
        // 6 MiB of noise: two 5 MiB parts, so the multipart path runs.
        ("big.bin".into(), noise(6 << 20, 0x9e3779b97f4a7c15)),
        ("bin/run.sh".into(), b"#!/bin/sh\necho hi\n".to_vec()),
    ];
    let mut total = 0;
    for (p, data) in &files {
        let full = root.join(p);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, data).unwrap();
        total += data.len() as u64;
    }
    std::fs::set_permissions(
        root.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::os::unix::fs::symlink("with space/file name.txt", root.join("link to spaced")).unwrap();
    (files.len() as u64, total)
}

struct Agent {
    endpoint: String,
    state: PathBuf,
    bucket: String,
    topic: String,
}

impl Agent {
    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_autobackup"));
        for v in [
            "AUTOBACKUP_BUCKET",
            "AUTOBACKUP_HISTORY",
            "AUTOBACKUP_LOG",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "RUST_LOG",
        ] {
            c.env_remove(v);
        }
        c.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AUTOBACKUP_STATE_DIR", &self.state)
            .env("SNS_TOPIC_ARN", &self.topic)
            .env("NO_COLOR", "1");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, |_| {})
    }

    fn run_with(&self, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Output {
        let mut c = self.command();
        c.args(args);
        tweak(&mut c);
        c.output().expect("run autobackup")
    }

    fn backup(&self, source: &Path, extra: &[&str]) -> Value {
        let src = source.to_str().unwrap();
        let mut args = vec![
            "backup",
            "--source",
            src,
            "--category",
            "documents",
            "--keep",
            "5",
            "--bucket",
            &self.bucket,
            "--topic-arn",
            &self.topic,
            "--part-size-mib",
            "5",
            "--level",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert_eq!(
            code(&out),
            0,
            "backup failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("backup --json prints JSON")
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn setup_bucket(c: &Clients, bucket: &str) {
    c.s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    c.s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            s3t::VersioningConfiguration::builder()
                .status(s3t::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let rule = s3t::LifecycleRule::builder()
        .id("documents-lifecycle-rule")
        .status(s3t::ExpirationStatus::Enabled)
        .filter(s3t::LifecycleRuleFilter::builder().prefix("").build())
        .transitions(
            s3t::Transition::builder()
                .days(30)
                .storage_class(s3t::TransitionStorageClass::StandardIa)
                .build(),
        )
        .noncurrent_version_transitions(
            s3t::NoncurrentVersionTransition::builder()
                .noncurrent_days(30)
                .storage_class(s3t::TransitionStorageClass::GlacierIr)
                .build(),
        )
        .noncurrent_version_expiration(
            s3t::NoncurrentVersionExpiration::builder()
                .noncurrent_days(90)
                .build(),
        )
        .abort_incomplete_multipart_upload(
            s3t::AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(7)
                .build(),
        )
        .build()
        .unwrap();
    c.s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            s3t::BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("lifecycle");
}

/// An SNS topic delivering into an SQS queue; returns (topic arn, queue url).
async fn notifications(c: &Clients, suffix: &str) -> (String, String) {
    let topic = c
        .sns
        .create_topic()
        .name(format!("autobackup-alerts-{suffix}"))
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .unwrap()
        .to_string();
    let queue_url = c
        .sqs
        .create_queue()
        .queue_name(format!("autobackup-alerts-{suffix}"))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .unwrap()
        .to_string();
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let queue_arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .unwrap()
        .clone();
    c.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .expect("subscribe");
    (topic, queue_url)
}

/// Every notification subject delivered so far.
async fn subjects(c: &Clients, queue_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let r = c
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let msgs = r.messages();
        if msgs.is_empty() {
            break;
        }
        for m in msgs {
            let body: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap_or(Value::Null);
            out.push(body["Subject"].as_str().unwrap_or_default().to_string());
            c.sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete message");
        }
    }
    out
}

async fn backup_keys(c: &Clients, bucket: &str) -> Vec<String> {
    let r =
        c.s3.list_objects_v2()
            .bucket(bucket)
            .prefix("backups/documents/")
            .send()
            .await
            .expect("list");
    let mut keys: Vec<String> = r
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

async fn roundtrip(kind: EngineKind) {
    let engine = probe::start(kind, &StartOptions::default())
        .await
        .unwrap_or_else(|e| panic!("start {kind}: {e}"));
    let c = Clients::for_endpoint(&engine.endpoint, kind, "us-east-1", "us-west-2").await;
    let suffix = format!(
        "{:x}{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 0xffffff,
        std::process::id() % 1000
    );
    let bucket = format!("autobackup-documents-primary-dev-{suffix}");
    setup_bucket(&c, &bucket).await;
    let (topic, queue_url) = notifications(&c, &suffix).await;

    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source tree");
    std::fs::create_dir_all(&source).unwrap();
    let (file_count, total_bytes) = awkward_tree(&source);
    let agent = Agent {
        endpoint: engine.endpoint.clone(),
        state: work.path().join("state"),
        bucket: bucket.clone(),
        topic: topic.clone(),
    };

    // Six backups, keep 5.
    let mut runs = Vec::new();
    for _ in 0..6 {
        let s = agent.backup(&source, &[]);
        assert_eq!(s["method"], "multipart", "{s}");
        assert_eq!(s["parts"], 2, "{s}");
        assert_eq!(s["files"], file_count);
        assert_eq!(s["uncompressed_bytes"], total_bytes);
        assert_eq!(s["symlinks"], 1);
        // What the engine stored for the multipart upload (see compat.rs): LocalStack checks and
        // keeps the full-object CRC64NVME as AWS does; MiniStack keeps only a composite one.
        let verdict = match kind {
            EngineKind::Localstack => "matches",
            _ => "composite_only",
        };
        assert_eq!(s["s3_checksum"]["verdict"], verdict, "{s}");
        runs.push(s);
    }
    let keys: Vec<String> = runs
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(runs[5]["deleted"], serde_json::json!([keys[0]]));
    assert!(
        runs[5]["rotation"][0]
            .as_str()
            .unwrap()
            .contains("delete marker"),
        "{}",
        runs[5]
    );
    assert_eq!(runs[4]["kept"], 5);
    let remaining = backup_keys(&c, &bucket).await;
    assert_eq!(remaining, keys[1..].to_vec(), "the five newest remain");

    // The rotated backup: a delete marker over its versions. Each sealed backup has two
    // versions: the sealed one and the pre-seal one, left to the bucket's lifecycle
    // (NoncurrentVersionExpiration) because the agent deletes no version by default (it
    // needs no s3:DeleteObjectVersion; `--delete-intermediate` opts back in).
    let versions =
        c.s3.list_object_versions()
            .bucket(&bucket)
            .prefix("backups/documents/")
            .send()
            .await
            .unwrap();
    let of = |k: &str| {
        versions
            .versions()
            .iter()
            .filter(|v| v.key() == Some(k))
            .count()
    };
    assert_eq!(of(&keys[0]), 2);
    for k in &keys[1..] {
        assert_eq!(of(k), 2, "{k}: the sealed version and the pre-seal one");
    }
    let markers: Vec<&str> = versions
        .delete_markers()
        .iter()
        .filter_map(|m| m.key())
        .collect();
    assert_eq!(markers, vec![keys[0].as_str()]);
    let rotated_version = versions
        .versions()
        .iter()
        .find(|v| v.key() == Some(keys[0].as_str()))
        .and_then(|v| v.version_id())
        .unwrap()
        .to_string();

    // Object metadata records the facts.
    let head =
        c.s3.head_object()
            .bucket(&bucket)
            .key(&keys[5])
            .send()
            .await
            .unwrap();
    let md = head.metadata().unwrap();
    assert_eq!(md[meta::SHA256], runs[5]["sha256"].as_str().unwrap());
    assert_eq!(md[meta::FILES], file_count.to_string());
    assert_eq!(md[meta::UNCOMPRESSED_BYTES], total_bytes.to_string());
    assert_eq!(md[meta::TOOL], layout::tool_version());
    assert_eq!(md[meta::CATEGORY], "documents");
    assert_eq!(head.content_type(), Some(layout::CONTENT_TYPE));

    // Restore the latest, byte for byte.
    let expected = snapshot(&source);
    let out = work.path().join("restored ü");
    let r = agent.run(&[
        "restore",
        "--category",
        "documents",
        "--to",
        out.to_str().unwrap(),
        "--bucket",
        &bucket,
        "--json",
    ]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    let rj: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(rj["key"], keys[5].as_str());
    assert!(
        rj["verified"].as_str().unwrap().contains("SHA-256 matches"),
        "{rj}"
    );
    assert_eq!(snapshot(&out), expected);

    // No overwrite unless asked.
    let again = agent.run(&[
        "restore",
        "--category",
        "documents",
        "--to",
        out.to_str().unwrap(),
        "--bucket",
        &bucket,
    ]);
    assert_eq!(code(&again), 10, "{}", stderr(&again));
    std::fs::write(out.join("stray file"), b"x").unwrap();
    let forced = agent.run(&[
        "restore",
        "--category",
        "documents",
        "--to",
        out.to_str().unwrap(),
        "--bucket",
        &bucket,
        "--force",
    ]);
    assert_eq!(code(&forced), 0, "{}", stderr(&forced));
    assert_eq!(snapshot(&out), expected, "--force replaces the tree");

    // By key and by the version id of the backup rotation deleted.
    for (at, dir) in [
        (keys[2].as_str(), "by key"),
        (rotated_version.as_str(), "by version"),
    ] {
        let to = work.path().join(dir);
        let r = agent.run(&[
            "restore",
            "--category",
            "documents",
            "--at",
            at,
            "--to",
            to.to_str().unwrap(),
            "--bucket",
            &bucket,
        ]);
        assert_eq!(code(&r), 0, "restore --at {at}: {}", stderr(&r));
        assert_eq!(snapshot(&to), expected);
    }
    let missing = agent.run(&[
        "restore",
        "--category",
        "documents",
        "--at",
        "no-such-version",
        "--to",
        work.path().join("x").to_str().unwrap(),
        "--bucket",
        &bucket,
    ]);
    assert_eq!(code(&missing), 11, "{}", stderr(&missing));

    // A tampered archive (metadata says another SHA-256) is refused and leaves nothing behind
    // when the metadata is opted in as the reference (it has no history record; without
    // --trust-metadata the lying metadata is never the reference at all).
    let tampered = "backups/tampered/copy.tar.gz";
    c.s3.copy_object()
        .bucket(&bucket)
        .key(tampered)
        .copy_source(format!("{bucket}/{}", keys[5]))
        .metadata_directive(s3t::MetadataDirective::Replace)
        .metadata(meta::SHA256, "0".repeat(64))
        .send()
        .await
        .unwrap();
    let bad_to = work.path().join("tampered");
    let r = agent.run(&[
        "restore",
        "--category",
        "documents",
        "--at",
        tampered,
        "--to",
        bad_to.to_str().unwrap(),
        "--bucket",
        &bucket,
        "--trust-metadata",
    ]);
    assert_eq!(code(&r), 9, "{}", stderr(&r));
    assert!(!bad_to.exists());
    assert!(std::fs::read_dir(work.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("autobackup-partial")));

    // A truncated backup: far smaller than the six before it.
    let small = work.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("only.txt"), b"most of the data is gone").unwrap();
    let s = agent.backup(&small, &[]);
    assert_eq!(s["method"], "put_object");
    // A single PutObject carries the full-object CRC64NVME on both engines.
    assert_eq!(s["s3_checksum"]["verdict"], "matches", "{s}");
    assert_eq!(s["size_check"]["verdict"], "anomaly", "{s}");
    assert_eq!(s["size_check"]["direction"], "below");
    assert_eq!(backup_keys(&c, &bucket).await.len(), 5);

    // Pre-flight failures and their exit codes.
    let src = source.to_str().unwrap();
    let missing_src = agent.run(&[
        "backup",
        "--source",
        "/nonexistent/dir",
        "--category",
        "documents",
        "--bucket",
        &bucket,
        "--topic-arn",
        &topic,
    ]);
    assert_eq!(code(&missing_src), 3, "{}", stderr(&missing_src));
    let no_bucket = agent.run(&[
        "backup",
        "--source",
        src,
        "--category",
        "documents",
        "--bucket",
        "autobackup-documents-primary-dev-missing",
        "--topic-arn",
        &topic,
    ]);
    assert_eq!(code(&no_bucket), 6, "{}", stderr(&no_bucket));
    let unreachable = agent.run_with(
        &[
            "backup",
            "--source",
            src,
            "--category",
            "documents",
            "--bucket",
            &bucket,
        ],
        |c| {
            c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
        },
    );
    assert_eq!(code(&unreachable), 4, "{}", stderr(&unreachable));
    let no_creds = agent.run_with(
        &[
            "backup",
            "--source",
            src,
            "--category",
            "documents",
            "--bucket",
            &bucket,
        ],
        |c| {
            c.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
                .env("AWS_CONFIG_FILE", "/nonexistent/config");
        },
    );
    assert_eq!(code(&no_creds), 5, "{}", stderr(&no_creds));

    // History: one record per run, failures included.
    let history = std::fs::read_to_string(agent.state.join("history.jsonl")).unwrap();
    let records: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let successes = records
        .iter()
        .filter(|r| r["kind"] == "backup" && r["outcome"] == "success")
        .count();
    let failures: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "failure")
        .collect();
    assert_eq!(successes, 7);
    assert_eq!(failures.len(), 4);
    assert!(failures.iter().any(|f| f["stage"] == "pre-flight: bucket"));
    assert!(records
        .iter()
        .filter(|r| r["outcome"] == "success")
        .all(|r| r["sha256"].as_str().is_some_and(|s| s.len() == 64)));

    // Cost: classes, current vs noncurrent, lifecycle projection, chart, history record.
    let chart = work.path().join("projection.svg");
    let cost = agent.run(&[
        "cost",
        "--bucket",
        &bucket,
        "--json",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(code(&cost), 0, "{}", stderr(&cost));
    let a: Value = serde_json::from_slice(&cost.stdout).unwrap();
    assert_eq!(a["versioning"], "enabled");
    let standard = a["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["storage_class"] == "STANDARD")
        .unwrap();
    // Five documents backups and the tampered copy are current. Noncurrent: the rotated
    // backups and every backup's pre-seal version (left to lifecycle by default).
    assert_eq!(standard["current_objects"], 6);
    assert_eq!(standard["noncurrent_objects"], 8);
    assert_eq!(a["delete_markers"], 2);
    assert_eq!(a["lifecycle_rules"][0]["id"], "documents-lifecycle-rule");
    assert_eq!(a["projection"]["months"].as_array().unwrap().len(), 12);
    assert!(a["projection"]["saving_usd"].as_f64().unwrap() >= 0.0);
    assert!(a["monthly_usd"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));
    let table = agent.run(&["cost", "--bucket", &bucket, "--no-record"]);
    assert_eq!(code(&table), 0);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("12-month projection") && text.contains("STANDARD"),
        "{text}"
    );
    let history = std::fs::read_to_string(agent.state.join("history.jsonl")).unwrap();
    assert_eq!(
        history
            .lines()
            .filter(|l| l.contains("\"kind\":\"cost\""))
            .count(),
        1
    );

    // The library path: a sealed multipart upload whose metadata is rewritten with
    // UploadPartCopy (the > 5 GiB path, forced with a low limit).
    let key = layout::key_for(Category::Media, chrono::Utc::now());
    let spec = UploadSpec {
        bucket: bucket.clone(),
        key: key.clone(),
        metadata: vec![(meta::CATEGORY.into(), "media".into())],
        part_size: 5 << 20,
        max_in_flight: 2,
        copy_object_limit: 5 << 20,
        // The opt-in (`--delete-intermediate`): the default leaves the pre-seal version to
        // lifecycle, which the unit tests cover.
        delete_intermediate: true,
    };
    let (rx, handle) = archive::spawn(
        source.clone(),
        ArchiveOptions {
            chunk_size: 5 << 20,
            level: 1,
            ..ArchiveOptions::default()
        },
        2,
    );
    let u = upload::upload_stream(
        &c.s3,
        &spec,
        rx,
        handle,
        &autobackup_agent::signals::Cancel::new(),
    )
    .await
    .expect("multipart-copy seal");
    assert_eq!(u.method, upload::Method::Multipart);
    let head =
        c.s3.head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
    assert_eq!(
        head.metadata().unwrap()[meta::SHA256],
        u.summary.checksums.sha256
    );
    assert_eq!(
        head.content_length(),
        Some(u.summary.checksums.bytes as i64)
    );
    let media_versions =
        c.s3.list_object_versions()
            .bucket(&bucket)
            .prefix(&key)
            .send()
            .await
            .unwrap();
    assert_eq!(
        media_versions.versions().len(),
        1,
        "the pre-seal version is gone"
    );
    // Uploaded through the library, so no history record: the seal's metadata is the
    // reference only when opted in.
    let media_out = work.path().join("media");
    let r = agent.run(&[
        "restore",
        "--category",
        "media",
        "--to",
        media_out.to_str().unwrap(),
        "--bucket",
        &bucket,
        "--trust-metadata",
    ]);
    assert_eq!(code(&r), 0, "{}", stderr(&r));
    assert_eq!(snapshot(&media_out), expected);

    // Notifications went to SNS.
    let subjects = subjects(&c, &queue_url).await;
    let count = |needle: &str| subjects.iter().filter(|s| s.contains(needle)).count();
    assert_eq!(count("[autobackup] OK documents"), 7, "{subjects:?}");
    assert!(
        count("ANOMALY backup documents: size below normal") >= 1,
        "{subjects:?}"
    );
    assert!(count("FAILED backup") >= 2, "{subjects:?}");
    assert!(count("FAILED restore") >= 2, "{subjects:?}");
    drop(engine);
}
