//! `autobackup bench`: generates a tree (half incompressible, half text-like data), backs it
//! up with the agent (a child `autobackup backup` process, so its own peak RSS is measured
//! in isolation), then does the same the naive way: `tar czf` into a temporary file and one
//! plain SDK `PutObject` of that file. It also times the agent's tar.gz stream alone (no
//! S3), which separates the agent's own speed from the endpoint's. Prints throughput and
//! peak RSS side by side. It is a
//! measurement, not a test: nothing is asserted. The objects it uploads are deleted again
//! (all their versions); the tree is removed unless `--dir` was given.
//!
//! Floor 6: may import modules of floors 0 to 5 only; it imports `archive`, `aws`, `cli::common`,
//! `errors`, `layout`, `preflight`, `rss`, `s3`, `units`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::common::{BucketArgs, Context};
use crate::aws::{classify, Aws, AwsArgs};
use crate::errors::AgentError;
use crate::layout::Category;
use crate::{rss, units};

#[derive(Args, Debug, Clone)]
pub struct Bench {
    /// Size of the generated tree in MiB.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub size_mb: u64,

    /// Where the tree lives. An existing non-empty directory is reused as is; otherwise a
    /// tree is generated there (kept afterwards). Default: a temporary directory, removed.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Category the agent's benchmark backup is filed under (it is deleted afterwards).
    #[arg(long, value_enum, default_value = "database")]
    pub category: Category,

    /// Create the bucket if it does not exist (for local engines).
    #[arg(long)]
    pub create_bucket: bool,

    /// Seed of the generated data.
    #[arg(long, default_value_t = 42, value_name = "N")]
    pub seed: u64,

    /// gzip level for both the agent and the baseline (which runs `tar -I "gzip -N" -cf`).
    #[arg(long, default_value_t = 6, value_name = "1-9", value_parser = clap::value_parser!(u32).range(1..=9))]
    pub level: u32,

    /// Part size of the agent in MiB.
    #[arg(long, default_value_t = 8, value_name = "MIB", value_parser = clap::value_parser!(u32).range(5..=5120))]
    pub part_size_mib: u32,

    /// Parts the agent uploads concurrently.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_in_flight: u32,

    #[command(flatten)]
    pub bucket: BucketArgs,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// A generated tree.
#[derive(Debug, Clone, Copy, Default)]
struct Tree {
    files: u64,
    bytes: u64,
}

const WORDS: &[&str] = &[
    "backup",
    "archive",
    "bucket",
    "object",
    "version",
    "lifecycle",
    "glacier",
    "standard",
    "restore",
    "checksum",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "invoice",
    "customer",
    "order",
    "total",
    "2026-11-22",
    "INFO",
    "WARN",
    "ERROR",
    "request",
    "latency_ms",
    "status=200",
    "status=404",
    "user_id",
];

/// A text-like block (deflates ~3-4x), built once and sliced per file.
fn text_block(rng: &mut StdRng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    while out.len() < size {
        let w = WORDS[rng.random_range(0..WORDS.len())];
        out.extend_from_slice(w.as_bytes());
        if rng.random_range(0..10) == 0 {
            out.extend_from_slice(format!(" {}", rng.random_range(0..100_000u32)).as_bytes());
        }
        out.push(if rng.random_range(0..12) == 0 {
            b'\n'
        } else {
            b' '
        });
    }
    out.truncate(size);
    out
}

fn generate(root: &Path, size_mb: u64, seed: u64) -> std::io::Result<Tree> {
    let mut rng = StdRng::seed_from_u64(seed);
    let total = size_mb << 20;
    let text = text_block(&mut rng, 4 << 20);
    let mut buf = vec![0u8; 1 << 20];
    let mut tree = Tree::default();
    let mut n = 0u64;
    while tree.bytes < total {
        // 40% of the bytes in large files, 40% medium, 20% small.
        let pick = rng.random_range(0..100);
        let size = if pick < 2 {
            rng.random_range(16u64 << 20..=64 << 20)
        } else if pick < 30 {
            rng.random_range(256u64 << 10..=4 << 20)
        } else {
            rng.random_range(1u64 << 10..=64 << 10)
        }
        .min(total - tree.bytes);
        let dir = root.join(format!("d{:02}/s{:02}", n % 16, (n / 16) % 8));
        std::fs::create_dir_all(&dir)?;
        let incompressible = n % 2 == 0;
        let path = dir.join(format!(
            "f{n:06}.{}",
            if incompressible { "bin" } else { "txt" }
        ));
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        let mut left = size;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            if incompressible {
                rng.fill_bytes(&mut buf[..k]);
                f.write_all(&buf[..k])?;
            } else {
                // k <= 1 MiB < the 4 MiB block.
                let start = rng.random_range(0..=text.len() - k);
                f.write_all(&text[start..start + k])?;
            }
            left -= k as u64;
        }
        f.flush()?;
        tree.files += 1;
        tree.bytes += size;
        n += 1;
    }
    Ok(tree)
}

fn measure_tree(root: &Path) -> std::io::Result<Tree> {
    let mut t = Tree::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d)? {
            let e = e?;
            let m = std::fs::symlink_metadata(e.path())?;
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                t.files += 1;
                t.bytes += m.len();
            }
        }
    }
    Ok(t)
}

/// A child process run to completion with its sampled peak RSS.
struct Measured {
    code: i32,
    wall: Duration,
    max_rss: u64,
    stdout: String,
}

/// VmHWM of a process and, recursively, its children, from `/proc` (0 once gone).
fn tree_hwm(pid: u32, peaks: &mut std::collections::HashMap<u32, u64>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    if let Some(h) = rss::parse_status(&status, "VmHWM") {
        let e = peaks.entry(pid).or_insert(0);
        *e = (*e).max(h);
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        tree_hwm(c, peaks);
    }
}

/// Runs a child to completion, sampling the peak RSS (VmHWM) of it and its children every
/// 20 ms. (`wait4`'s `ru_maxrss` cannot be used for a child of a big process: exec records
/// the parent's high-water mark into it.) `max_rss` is the largest single process.
fn run_sampled(cmd: &mut Command) -> std::io::Result<Measured> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        })
    });
    let mut peaks = std::collections::HashMap::new();
    let status = loop {
        tree_hwm(child.id(), &mut peaks);
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Measured {
        code: status.code().unwrap_or(-1),
        wall: started.elapsed(),
        max_rss: peaks.values().copied().max().unwrap_or(0),
        stdout: reader.and_then(|r| r.join().ok()).unwrap_or_default(),
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Bench {
    pub async fn run(&self, _ctx: &Context) -> Result<(), AgentError> {
        let aws = Aws::connect(&self.aws)
            .await
            .with_expected_owner(self.aws.expected_owner.as_deref());
        let bucket = self.bucket.bucket.clone();
        crate::preflight::endpoint_and_credentials(&aws).await?;
        if let Err(e) = crate::preflight::bucket(&aws, &bucket).await {
            if !(self.create_bucket && matches!(e, AgentError::NoBucket { .. })) {
                return Err(e);
            }
            let mut create = aws.s3.create_bucket().bucket(&bucket);
            if self.aws.region != "us-east-1" {
                create = create.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            self.aws.region.as_str(),
                        ))
                        .build(),
                );
            }
            create
                .send()
                .await
                .map_err(|e| crate::aws::aws_error("S3", "CreateBucket", &bucket, &e))?;
            println!("created bucket {bucket}");
        }

        let work = std::env::temp_dir().join(format!("autobackup-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work)
            .map_err(|e| AgentError::local("bench directory", &work, e))?;
        let result = self.measure(&aws, &bucket, &work).await;
        let _ = std::fs::remove_dir_all(&work);
        result
    }

    async fn measure(&self, aws: &Aws, bucket: &str, work: &Path) -> Result<(), AgentError> {
        let tree_dir = self.dir.clone().unwrap_or_else(|| work.join("tree"));
        let reuse = std::fs::read_dir(&tree_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        let tree = if reuse {
            measure_tree(&tree_dir).map_err(|e| AgentError::local("bench tree", &tree_dir, e))?
        } else {
            std::fs::create_dir_all(&tree_dir)
                .map_err(|e| AgentError::local("bench tree", &tree_dir, e))?;
            let t0 = Instant::now();
            let t = generate(&tree_dir, self.size_mb, self.seed)
                .map_err(|e| AgentError::local("bench tree", &tree_dir, e))?;
            println!(
                "generated {} in {} files under {} ({:.1} s)",
                units::bytes(t.bytes),
                t.files,
                tree_dir.display(),
                t0.elapsed().as_secs_f64()
            );
            t
        };
        // Drop page-cache advantages evenly: read the tree once before either run.
        let _ = Command::new("tar")
            .arg("cf")
            .arg("/dev/null")
            .arg("-C")
            .arg(&tree_dir)
            .arg(".")
            .status();

        // 1. The agent, as its own process.
        let exe = std::env::current_exe()
            .map_err(|e| AgentError::Internal(format!("current exe: {e}")))?;
        let log = work.join("agent.log");
        let mut cmd = Command::new(exe);
        cmd.arg("backup")
            .arg("--source")
            .arg(&tree_dir)
            .args([
                "--category",
                self.category.name(),
                "--bucket",
                bucket,
                "--keep",
                "100000",
                "--json",
            ])
            .arg("--history")
            .arg(work.join("history.jsonl"))
            .arg("--log-file")
            .arg(&log)
            .args(["--level", &self.level.to_string()])
            .args(["--part-size-mib", &self.part_size_mib.to_string()])
            .args(["--max-in-flight", &self.max_in_flight.to_string()])
            .args(["--region", &self.aws.region])
            .args(["--force-path-style", &self.aws.path_style().to_string()])
            .env_remove("SNS_TOPIC_ARN")
            .stderr(Stdio::null());
        if let Some(ep) = self.aws.endpoint() {
            cmd.args(["--endpoint-url", ep]);
        }
        let agent = tokio::task::spawn_blocking(move || run_sampled(&mut cmd))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))?
            .map_err(|e| AgentError::Internal(format!("running the agent: {e}")))?;
        if agent.code != 0 {
            return Err(AgentError::Internal(format!(
                "the agent exited with {}; log tail:\n{}",
                agent.code,
                tail(&log, 15)
            )));
        }
        let summary: serde_json::Value = serde_json::from_str(agent.stdout.trim())
            .map_err(|e| AgentError::Internal(format!("agent summary: {e}")))?;
        let agent_key = summary["key"].as_str().unwrap_or_default().to_string();
        let agent_archive = summary["bytes"].as_u64().unwrap_or(0);
        let agent_hwm = summary["peak_rss_bytes"].as_u64();

        // 2. tar czf into a file, then one PutObject of it.
        let file = work.join("baseline.tar.gz");
        let mut tar = Command::new("tar");
        tar.arg("-I")
            .arg(format!("gzip -{}", self.level))
            .arg("-cf")
            .arg(&file)
            .arg("-C")
            .arg(&tree_dir)
            .arg(".")
            .stderr(Stdio::null());
        let tar_run = tokio::task::spawn_blocking(move || run_sampled(&mut tar))
            .await
            .map_err(|e| AgentError::Internal(e.to_string()))?
            .map_err(|e| AgentError::Internal(format!("running tar: {e}")))?;
        if tar_run.code != 0 {
            return Err(AgentError::Internal(format!(
                "tar czf exited with {}",
                tar_run.code
            )));
        }
        let file_len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let baseline_key = format!(
            "bench/{}-baseline.tar.gz",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let base_rss = rss::current_bytes();
        let reset = rss::reset_peak();
        let put_started = Instant::now();
        let body = ByteStream::from_path(&file)
            .await
            .map_err(|e| AgentError::local("baseline archive", &file, e))?;
        aws.s3
            .put_object()
            .bucket(bucket)
            .key(&baseline_key)
            .body(body)
            .send()
            .await
            .map_err(|e| crate::aws::aws_error("S3", "PutObject", &baseline_key, &e))?;
        let put_wall = put_started.elapsed();
        let put_hwm = rss::peak_bytes();

        // 3. Clean up the uploaded objects (every version).
        for key in [&agent_key, &baseline_key] {
            if key.is_empty() {
                continue;
            }
            match crate::s3::list_versions(&aws.s3, bucket, key).await {
                Ok(versions) => {
                    for v in versions.iter().filter(|v| &v.key == key) {
                        if let Err(e) = aws
                            .s3
                            .delete_object()
                            .bucket(bucket)
                            .key(key)
                            .set_version_id(v.version_id.clone())
                            .send()
                            .await
                        {
                            tracing::warn!(key = %key, error = %classify(&e).text(), "could not delete a benchmark object");
                        }
                    }
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }

        // 4. The agent's archive pipeline alone (in-process, nothing uploaded): what the agent
        //    can do when the endpoint keeps up. Last, so its buffers do not inflate the
        //    in-process PutObject figure.
        let reset0 = rss::reset_peak();
        let t0 = Instant::now();
        let (mut rx, handle) = crate::archive::spawn(
            tree_dir.clone(),
            crate::archive::ArchiveOptions {
                chunk_size: ((self.part_size_mib as usize) << 20).min(8 << 20),
                level: self.level,
                ..Default::default()
            },
            2,
        );
        while rx.recv().await.is_some() {}
        let archived = crate::archive::join(handle).await?;
        let archive_wall = t0.elapsed();
        let archive_hwm = if reset0 { rss::peak_bytes() } else { None };

        if self.dir.is_none() {
            let _ = std::fs::remove_dir_all(&tree_dir);
        }

        // 5. Figures.
        let mb = |d: Duration| units::mb_per_s(tree.bytes, d.as_secs_f64());
        let baseline_wall = tar_run.wall + put_wall;
        println!();
        println!(
            "tree {} in {} files, endpoint {}, gzip -{}, part {} MiB x {} in flight",
            units::bytes(tree.bytes),
            tree.files,
            aws.endpoint,
            self.level,
            self.part_size_mib,
            self.max_in_flight
        );
        println!(
            "{:<34} {:>9} {:>9} {:>11} {:>13} {:>12}",
            "", "wall s", "MB/s", "archive", "peak RSS", "temp disk"
        );
        println!(
            "{:<34} {:>9.2} {:>9.1} {:>11} {:>13} {:>12}",
            "autobackup backup (streamed)",
            agent.wall.as_secs_f64(),
            mb(agent.wall),
            units::bytes(agent_archive),
            units::bytes(agent_hwm.unwrap_or(agent.max_rss)),
            "0 B"
        );
        println!(
            "{:<34} {:>9.2} {:>9.1} {:>11} {:>13} {:>12}",
            " (its tar.gz stream alone, no S3)",
            archive_wall.as_secs_f64(),
            mb(archive_wall),
            units::bytes(archived.checksums.bytes),
            archive_hwm.map(units::bytes).unwrap_or_else(|| "?".into()),
            "0 B"
        );
        println!(
            "{:<34} {:>9.2} {:>9.1} {:>11} {:>13} {:>12}",
            "tar czf (largest of tar, gzip)",
            tar_run.wall.as_secs_f64(),
            mb(tar_run.wall),
            units::bytes(file_len),
            units::bytes(tar_run.max_rss),
            units::bytes(file_len)
        );
        println!(
            "{:<34} {:>9.2} {:>9.1} {:>11} {:>13} {:>12}",
            " + one SDK PutObject of the file",
            put_wall.as_secs_f64(),
            units::mb_per_s(file_len, put_wall.as_secs_f64()),
            "",
            match (reset, put_hwm) {
                (true, Some(h)) => units::bytes(h),
                _ => "?".into(),
            },
            ""
        );
        println!(
            "{:<34} {:>9.2} {:>9.1}",
            "baseline total (tar, then upload)",
            baseline_wall.as_secs_f64(),
            mb(baseline_wall)
        );
        println!(
            "peak RSS: agent VmHWM (own process); tar/gzip VmHWM sampled every 20 ms; the in-process rows \
             include the bench process itself ({} before they ran). MB/s: MB (10^6 bytes) of tree per wall second",
            base_rss.map(units::bytes).unwrap_or_else(|| "?".into())
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tree_has_the_requested_size_and_mix() {
        let dir = tempfile::tempdir().unwrap();
        let t = generate(dir.path(), 3, 7).unwrap();
        assert_eq!(t.bytes, 3 << 20);
        let measured = measure_tree(dir.path()).unwrap();
        assert_eq!((measured.files, measured.bytes), (t.files, t.bytes));
        assert!(t.files > 2);
        // Same seed, same tree.
        let dir2 = tempfile::tempdir().unwrap();
        let t2 = generate(dir2.path(), 3, 7).unwrap();
        assert_eq!((t2.files, t2.bytes), (t.files, t.bytes));
    }

    #[test]
    fn text_block_compresses_and_random_does_not() {
        let mut rng = StdRng::seed_from_u64(1);
        let text = text_block(&mut rng, 1 << 20);
        let mut random = vec![0u8; 1 << 20];
        rng.fill_bytes(&mut random);
        let deflated = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(data).unwrap();
            e.finish().unwrap().len()
        };
        assert!(deflated(&text) < (1 << 20) / 2);
        assert!(deflated(&random) > (1 << 20) * 99 / 100);
    }

    #[test]
    fn measured_child_reports_exit_code_and_rss() {
        let m = run_sampled(Command::new("sh").args(["-c", "echo hi; sleep 0.1; exit 3"])).unwrap();
        assert_eq!(m.code, 3);
        assert_eq!(m.stdout.trim(), "hi");
        assert!(m.max_rss > 0);
    }
}
