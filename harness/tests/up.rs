//! End to end: `harness up` as a child process, driven with the plain AWS SDK (nothing from
//! the harness library), checked through `harness status` and `harness alerts`, stopped
//! with SIGINT; every engine process it started must be gone.

#![cfg(feature = "e2e")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

fn harness(engine: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("--engine")
        .arg(engine)
        .args(args)
        .output()
        .expect("run harness");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

async fn up_end_to_end(engine: &str) {
    let json =
        std::env::temp_dir().join(format!("harness-up-{engine}-{}.json", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["--engine", engine, "up", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start harness up");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a ready line before the deadline");
        if line.starts_with("ready:") {
            break;
        }
    }
    // A second `up` for the same engine refuses instead of touching the first one.
    let second = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["--engine", engine, "up"])
        .output()
        .expect("second up");
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already runs"));

    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let endpoint = info["endpoint"].as_str().unwrap().to_string();
    let bucket = info["buckets"][0]["primary"].as_str().unwrap().to_string();
    let queue = info["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["role"] == "validation")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let engine_pid = info["engine_pid"].as_u64().map(|p| p as u32);

    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&config);
    s3.put_object()
        .bucket(&bucket)
        .key("by-hand/report.txt")
        .body(ByteStream::from_static(b"uploaded by a plain SDK client"))
        .send()
        .await
        .expect("upload");
    sqs.send_message()
        .queue_url(&queue)
        .message_body("poison, not json")
        .send()
        .await
        .expect("send poison");

    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let status = harness(engine, &["status"]);
        if status.contains("validated") && status.contains("alerts received: 1") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the outcome:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(status.contains("by-hand/report.txt"), "{status}");
    let alerts = harness(engine, &["alerts"]);
    assert!(alerts.starts_with("1 alert(s) received"), "{alerts}");
    assert!(alerts.contains("DEAD-LETTER"), "{alerts}");
    assert!(alerts.contains("poison, not json"), "{alerts}");

    // SIGINT: everything it started stops.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let code = child.wait().expect("up exits");
    assert!(code.success(), "harness up exited with {code}");
    if let Some(pid) = engine_pid {
        let t = Instant::now();
        while alive(pid) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!alive(pid), "engine process {pid} still runs");
    }
    assert!(harness(engine, &["status"]).contains("no `harness up` runs"));
    let _ = std::fs::remove_file(json);
}

#[tokio::test(flavor = "multi_thread")]
async fn up_on_ministack() {
    up_end_to_end("ministack").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn up_on_localstack() {
    up_end_to_end("localstack").await;
}
