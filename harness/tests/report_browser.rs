//! End to end, in a real browser: the HTML report of real runs, opened in headless Chromium
//! through ChromeDriver (WebDriver, `fantoccini`), checked for what a person would see.
//!
//! The harness binary plays two scenarios on MiniStack into one report: `poison-pill` as it
//! is, and a planted failure: `happy-path` copied into a temporary root whose snapshot has
//! one line edited. The page must show one visible timeline row per object version (per
//! message for the poison pill), the planted case visibly marked failed (a red FAIL badge,
//! a red frame) and its diff visible with the edited line; full-page screenshots are saved
//! under the target directory and their paths printed.
//!
//! Chromium comes from `engines/install-chromium.sh` (`make chromium-install`; `make test`
//! runs it): `HARNESS_CHROMIUM` names the directory holding its `chromium` and
//! `chromedriver`, else the newest install under `$HARNESS_CACHE_DIR/tools/`, else Debian's
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`. Without any, the test prints
//! `SKIPPED: chromium not installed (run make chromium-install)` and passes.

#![cfg(feature = "e2e")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// Chromium and its ChromeDriver.
struct Browser {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn find_browser() -> Option<Browser> {
    let in_dir = |dir: &Path| {
        let b = Browser {
            chromium: dir.join("chromium"),
            chromedriver: dir.join("chromedriver"),
        };
        (b.chromium.is_file() && b.chromedriver.is_file()).then_some(b)
    };
    if let Some(dir) = std::env::var_os("HARNESS_CHROMIUM") {
        return in_dir(Path::new(&dir));
    }
    let cache = std::env::var_os("HARNESS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/autobackup-harness"))
        });
    if let Some(tools) = cache.map(|c| c.join("tools")) {
        let mut installs: Vec<PathBuf> = std::fs::read_dir(&tools)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("chromium-"))
                    && p.join(".installed").is_file()
            })
            .collect();
        installs.sort();
        if let Some(b) = installs.iter().rev().find_map(|p| in_dir(&p.join("bin"))) {
            return Some(b);
        }
    }
    in_dir(Path::new("/usr/bin"))
}

/// ChromeDriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ChromeDriver runs whatever binary a session names, so it must not be a door for other
/// local clients (security review 2, M1): it serves only under a random URL base (a client
/// without it finds nothing, as `the_driver_answers_only_under_its_secret_base` checks),
/// on loopback only (no `--allowed-ips`: given, even empty, it admits every remote
/// address), refuses a `Host` that is not loopback (a web page on a rebound DNS name), and
/// lives only for this test. The base is in its argv, which other users can read in
/// `/proc` unless it is mounted `hidepid`: a residual risk of the browser test only.
fn start_driver(b: &Browser) -> Driver {
    use rand::Rng as _;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let secret: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let child = Command::new(&b.chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--url-base=/{secret}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        // With the trailing slash, WebDriver paths join under the base (`.../{secret}/session`).
        url: format!("http://127.0.0.1:{port}/{secret}/"),
    }
}

/// A client that does not know the driver's base finds nothing to drive.
async fn the_driver_answers_only_under_its_secret_base(driver: &Driver) {
    let (root, _) = driver
        .url
        .trim_end_matches('/')
        .rsplit_once('/')
        .expect("a base");
    let http = reqwest::Client::new();
    let ours = http.get(format!("{}status", driver.url)).send().await;
    assert!(
        ours.is_ok_and(|r| r.status().is_success()),
        "the driver answers under its base"
    );
    let guessed = http
        .post(format!("{root}/session"))
        .body("{}")
        .send()
        .await
        .expect("the driver answers");
    assert!(
        !guessed.status().is_success(),
        "a session without the base was accepted: {}",
        guessed.status()
    );
    let rebound = http
        .get(format!("{}status", driver.url))
        .header("host", "evil.example")
        .send()
        .await
        .expect("the driver answers");
    assert!(
        !rebound.status().is_success(),
        "a request for a rebound DNS name was served"
    );
}

async fn open_browser(b: &Browser, driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": b.chromium,
            // As root on a closed network (see the machine notes): no sandbox, no
            // background connections.
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Plays the scenarios of `dir` on MiniStack through the harness binary into `report`.
fn play(dir: &Path, report: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["--engine", "ministack", "scenario", "run", "--all", "--dir"])
        .arg(dir)
        .arg("--report")
        .arg(report)
        .output()
        .expect("run the harness");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The groups of a transcript's `validator decisions:` section: one per object version (or
/// message), the rows the timeline must show.
fn decision_groups(snapshot: &str) -> usize {
    snapshot
        .lines()
        .skip_while(|l| *l != "validator decisions:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim() != "none")
        .count()
}

/// Shown, with a size: what a person can see (not merely present in the DOM).
async fn assert_visible(e: &fantoccini::elements::Element, what: &str) {
    assert!(
        e.is_displayed().await.expect("is_displayed"),
        "{what} is not displayed"
    );
    let (_, _, w, h) = e.rectangle().await.expect("rectangle");
    assert!(w > 0.0 && h > 0.0, "{what} has no size ({w} x {h})");
}

/// A full-page PNG screenshot under the target directory; returns its path.
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let height = client
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .expect("page height")
        .as_u64()
        .unwrap_or(900);
    client
        .set_window_size(1200, height.clamp(900, 12_000) as u32)
        .await
        .expect("resize");
    let png = client.screenshot().await.expect("screenshot");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_report_shows_each_version_the_failed_case_and_its_diff() {
    let Some(browser) = find_browser() else {
        println!("SKIPPED: chromium not installed (run make chromium-install)");
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (scenarios, snapshots) = (
        root.path().join("scenarios"),
        root.path().join("tests/snapshots"),
    );
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::create_dir_all(&snapshots).unwrap();
    let mut groups = std::collections::BTreeMap::new();
    for name in ["poison-pill", "happy-path"] {
        std::fs::copy(
            repo.join(format!("scenarios/{name}.toml")),
            scenarios.join(format!("{name}.toml")),
        )
        .unwrap();
        let snap =
            std::fs::read_to_string(repo.join(format!("tests/snapshots/scenarios__{name}.snap")))
                .unwrap();
        groups.insert(name, decision_groups(&snap));
        // The planted failure: one line of happy-path's reviewed outcome edited.
        let snap = if name == "happy-path" {
            assert!(snap.contains("\nalerts received: 0\n"));
            snap.replace("\nalerts received: 0\n", "\nalerts received: 1\n")
        } else {
            snap
        };
        std::fs::write(snapshots.join(format!("scenarios__{name}.snap")), snap).unwrap();
    }
    assert_eq!(groups["poison-pill"], 1, "one message");
    assert_eq!(groups["happy-path"], 3, "one version per category");

    let report = root.path().join("report.html");
    let started = Instant::now();
    let (code, output) = play(&scenarios, &report);
    println!(
        "harness played both in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(code, 1, "the planted failure fails the run:\n{output}");
    assert!(output.contains("PASS poison-pill"), "{output}");
    assert!(output.contains("FAIL happy-path"), "{output}");

    let driver = start_driver(&browser);
    the_driver_answers_only_under_its_secret_base(&driver).await;
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&browser, &driver, profile.path()).await;
    client
        .goto(&format!("file://{}", report.display()))
        .await
        .expect("open the report");

    // The summary table: one row per case, the planted one marked failed.
    let rows = client
        .find_all(Locator::Css("#cases tr.case-row"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let failed_row = client
        .find(Locator::Css(
            "#cases tr.case-row[data-scenario='happy-path'][data-status='failed']",
        ))
        .await
        .expect("happy-path's row marked failed");
    assert_visible(&failed_row, "the failed row").await;

    for (name, want_status) in [("poison-pill", "passed"), ("happy-path", "failed")] {
        let section = client
            .find(Locator::Css(&format!(
                "section.case[data-scenario='{name}']"
            )))
            .await
            .unwrap_or_else(|_| panic!("a section for {name}"));
        assert_eq!(
            section.attr("data-status").await.unwrap().as_deref(),
            Some(want_status)
        );
        assert_visible(&section, name).await;

        // One visible timeline row per object version (or message).
        let lanes = section
            .find_all(Locator::Css("svg.timeline g.lane"))
            .await
            .unwrap();
        assert_eq!(lanes.len(), groups[name], "{name}: lanes");
        for lane in &lanes {
            let label = lane.attr("data-lane").await.unwrap().unwrap_or_default();
            assert_visible(lane, &format!("{name}: lane {label}")).await;
            let text = lane.find(Locator::Css("text.lane-label")).await.unwrap();
            assert_visible(&text, &format!("{name}: the label of {label}")).await;
            assert!(!text.text().await.unwrap().is_empty());
            let marks = lane.find_all(Locator::Css(".mark")).await.unwrap();
            assert!(
                marks.len() >= 2,
                "{name}: {label} has {} marks",
                marks.len()
            );
        }

        let badge = section.find(Locator::Css("h2 .badge")).await.unwrap();
        assert_visible(&badge, &format!("{name}: its status badge")).await;
        let colour = badge.css_value("background-color").await.unwrap();
        if want_status == "failed" {
            assert_eq!(badge.text().await.unwrap(), "FAIL");
            assert_eq!(colour, "rgba(207, 34, 46, 1)", "a red FAIL badge");
            let diff = section
                .find(Locator::Css("pre.diff"))
                .await
                .expect("a diff");
            assert_visible(&diff, "the diff").await;
            let removed = diff.find(Locator::Css("span.del")).await.unwrap();
            assert_visible(&removed, "the diff's removed line").await;
            assert_eq!(removed.text().await.unwrap(), "-alerts received: 1");
            assert_eq!(
                removed.css_value("background-color").await.unwrap(),
                "rgba(255, 235, 233, 1)"
            );
            let added = diff.find(Locator::Css("span.add")).await.unwrap();
            assert_visible(&added, "the diff's added line").await;
            assert_eq!(added.text().await.unwrap(), "+alerts received: 0");
        } else {
            assert_eq!(badge.text().await.unwrap(), "PASS");
            assert_eq!(colour, "rgba(26, 127, 55, 1)", "a green PASS badge");
            assert!(
                section.find(Locator::Css("pre.diff")).await.is_err(),
                "no diff"
            );
            // The poison pill's lane: five failed attempts, then the dead letter and its alert.
            let lane = &lanes[0];
            assert_eq!(
                lane.find_all(Locator::Css(".mark.attempt.bad"))
                    .await
                    .unwrap()
                    .len(),
                5
            );
            assert_visible(
                &lane.find(Locator::Css(".mark.alert")).await.unwrap(),
                "the alert mark",
            )
            .await;
            let alert = section.find(Locator::Css(".alert pre")).await.unwrap();
            assert_visible(&alert, "the alert in full").await;
            assert!(alert
                .text()
                .await
                .unwrap()
                .contains("this is not an S3 event {"));
        }
        let depths = section.find(Locator::Css("svg.depths")).await.unwrap();
        assert_visible(&depths, &format!("{name}: the queue depth chart")).await;
    }

    let shot = screenshot(&client, "report").await;
    println!("screenshot: {}", shot.display());
    // The failed case alone, as someone following the summary's link sees it.
    client
        .goto(&format!(
            "file://{}#case-ministack-happy-path",
            report.display()
        ))
        .await
        .unwrap();
    client.set_window_size(1200, 900).await.unwrap();
    let png = client.screenshot().await.unwrap();
    let failed = shot.with_file_name("report-failed-case.png");
    std::fs::write(&failed, png).unwrap();
    println!("screenshot: {}", failed.display());
    client.close().await.unwrap();
    drop(driver);
}
