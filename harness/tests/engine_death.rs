//! End to end: when the engine process dies during a scenario, the run fails at once with
//! "engine exited", the exit status and the engine log's tail, instead of every step
//! waiting out its timeout on "connection refused" (review finding 23).

#![cfg(feature = "e2e")]

use std::time::{Duration, Instant};

use harness::engine::{EngineKind, StartOptions};
use harness::probe;
use harness::scenario::file::Scenario;
use harness::scenario::runner::{self, RunOptions};
use harness::scenario::ScenarioError;
use harness::topology::TopologySpec;

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_engine_fails_the_scenario_with_its_log() {
    let engine = probe::start(
        EngineKind::Ministack,
        &StartOptions {
            fresh: true,
            ..StartOptions::default()
        },
    )
    .await
    .expect("engine starts");
    let pid = engine.pid().expect("a process this test started") as i32;
    let spec = TopologySpec::load(&TopologySpec::default_path()).expect("topology");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine-death.toml");
    std::fs::write(
        &path,
        r#"description = "the engine dies while the scenario waits"

[[step]]
upload = { category = "documents", key = "a.txt", text = "a" }

[[step]]
wait = { for = "alerts", count = 99, timeout_seconds = 60 }
"#,
    )
    .unwrap();
    let scenario = Scenario::load(&path, &spec.categories).expect("a valid scenario");
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        // SAFETY: the engine's own process group, started by this test.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        Instant::now()
    });
    let result = runner::run(&engine, &spec, &scenario, &RunOptions::default()).await;
    let ended = Instant::now();
    let killed = killer.await.unwrap();
    let Err(e) = result else {
        panic!("the scenario passed although its engine was killed");
    };
    assert!(matches!(e, ScenarioError::EngineExited(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("engine exited"), "{text}");
    assert!(text.contains("last lines of"), "{text}");
    assert!(
        ended.saturating_duration_since(killed) < Duration::from_secs(5),
        "noticed {:?} after the kill",
        ended.saturating_duration_since(killed)
    );
}
