//! End to end against real local engines started through the harness (feature `e2e`),
//! finding 19 of the security review: a real SIGTERM sent to the `autobackup` binary in
//! the middle of a multipart upload (after its first part is stored) makes it abort the
//! upload and exit 143, and `ListMultipartUploads` on the bucket is empty within 5 s of
//! the signal. The run names the engine's account as `--expected-owner`, so pre-flight's
//! owner comparison (finding 21) meets a real engine too. The same test runs on MiniStack
//! and LocalStack, one engine at a time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::aws::Clients;
use harness::engine::{EngineKind, StartOptions};
use harness::probe;

static ONE_ENGINE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How long after the SIGTERM the bucket must have no multipart upload left.
const EMPTY_WITHIN: Duration = Duration::from_secs(5);

fn on_engine(kind: EngineKind) {
    let _guard = ONE_ENGINE_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(sigterm_aborts_the_upload(kind));
}

#[test]
fn sigterm_mid_upload_on_ministack() {
    on_engine(EngineKind::Ministack);
}

#[test]
fn sigterm_mid_upload_on_localstack() {
    on_engine(EngineKind::Localstack);
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

/// 160 MiB of noise in 8 files: 32 parts of 5 MiB, far more than the first part.
fn big_tree(root: &Path) {
    for i in 0..8u64 {
        std::fs::write(
            root.join(format!("chunk-{i}.bin")),
            noise(20 << 20, 0x9e37_79b9_7f4a_7c15 ^ (i + 1)),
        )
        .unwrap();
    }
}

/// Every multipart upload under `backups/` in the bucket: (key, upload id).
async fn uploads(c: &Clients, bucket: &str) -> Vec<(String, String)> {
    let r =
        c.s3.list_multipart_uploads()
            .bucket(bucket)
            .prefix("backups/")
            .send()
            .await
            .expect("ListMultipartUploads");
    r.uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap_or_default().to_string(),
                u.upload_id().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn parts(c: &Clients, bucket: &str, key: &str, id: &str) -> usize {
    match c
        .s3
        .list_parts()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .send()
        .await
    {
        Ok(r) => r.parts().len(),
        Err(_) => 0,
    }
}

async fn sigterm_aborts_the_upload(kind: EngineKind) {
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
    let bucket = format!("autobackup-documents-primary-dev-sig{suffix}");
    c.s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");

    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    big_tree(&source);
    let stderr_path = work.path().join("agent.stderr");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autobackup"));
    for v in [
        "AUTOBACKUP_BUCKET",
        "AUTOBACKUP_HISTORY",
        "AUTOBACKUP_LOG",
        "AUTOBACKUP_BUCKET_OWNER",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "SNS_TOPIC_ARN",
        "RUST_LOG",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("AWS_ENDPOINT_URL", &engine.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AUTOBACKUP_STATE_DIR", work.path().join("state"))
        .env("NO_COLOR", "1")
        .args([
            "backup",
            "--source",
            source.to_str().unwrap(),
            "--category",
            "documents",
            "--bucket",
            &bucket,
            "--part-size-mib",
            "5",
            "--max-in-flight",
            "2",
            "--level",
            "0",
            // Local engines answer GetCallerIdentity with this account and own their
            // buckets by it: pre-flight's owner comparison and the header on every request
            // run against a real engine too (finding 21).
            "--expected-owner",
            "000000000000",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start autobackup");
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    // Wait until the engine holds the upload's first part.
    let (key, id) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "autobackup ended ({status}) before a part was stored:\n{}",
                log()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no part stored after 120 s:\n{}",
            log()
        );
        let mut found = None;
        for (k, i) in uploads(&c, &bucket).await {
            if parts(&c, &bucket, &k, &i).await > 0 {
                found = Some((k, i));
                break;
            }
        }
        match found {
            Some(f) => break f,
            None => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let first_part_after = started.elapsed();

    // SAFETY: kill has no memory-safety preconditions; the pid is our own running child.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    let signalled = Instant::now();

    // The process exits 143 (within the agent's 30 s grace period).
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if signalled.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("autobackup still running 40 s after SIGTERM:\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exited_after = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(143),
        "exit status after SIGTERM: {status}\n{}",
        log()
    );

    // No multipart upload is left, within 5 s of the signal.
    let left = loop {
        let left = uploads(&c, &bucket).await;
        if left.is_empty() || signalled.elapsed() > EMPTY_WITHIN {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let empty_after = signalled.elapsed();
    assert!(
        left.is_empty(),
        "{kind}: multipart uploads left {:?} after SIGTERM (upload {id} of {key}):\n{}",
        left,
        log()
    );
    assert!(
        empty_after <= EMPTY_WITHIN,
        "{kind}: uploads gone only after {empty_after:?}"
    );
    let l = log();
    assert!(l.contains("SIGTERM"), "{l}");
    assert!(l.contains("multipart upload aborted"), "{l}");
    assert!(
        l.contains("the expected bucket owner is the caller's account"),
        "{l}"
    );
    // Nothing was stored under the key.
    assert!(
        c.s3.head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .is_err(),
        "an object was stored at {key}"
    );
    eprintln!(
        "{kind} ({}): first part stored after {first_part_after:?}; exit 143 {exited_after:?} after SIGTERM; no upload left {empty_after:?} after it",
        engine.how
    );

    let _ = c.s3.delete_bucket().bucket(&bucket).send().await;
    drop(engine);
}
