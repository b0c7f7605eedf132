//! `autobackup backup`: pre-flight, stream the archive into S3, rotate, record history,
//! detect anomalies, notify. Prints a summary (or `--json`) on stdout.
//!
//! Floor 10: may import modules of floors 0 to 9 only; it imports `anomaly`, `archive`,
//! `archive::estimate`, `aws`, `cli::common`, `compat`, `errors`, `history`, `layout`, `notify`,
//! `preflight`, `rotation`, `rss`, `s3`, `signals`, `units`, `upload`, `upload::parts`,
//! `upload::spec`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use clap::Args;
use serde::Serialize;

use super::common::{AnomalyArgs, BucketArgs, Context, RecordArgs};
use crate::anomaly::{self, Check, Floor, Side};
use crate::archive::{self, ArchiveOptions};
use crate::aws::{Aws, AwsArgs};
use crate::errors::AgentError;
use crate::history::{self, BackupRecord, Outcome, Record};
use crate::layout::{self, meta, Category};
use crate::notify::{self, Notifier};
use crate::signals::{or_cancelled, Cancel};
use crate::upload::{self, UploadSpec, Uploaded};
use crate::{preflight, rotation, units};

#[derive(Args, Debug, Clone)]
pub struct Backup {
    /// Directory to back up (its contents become the archive's top level).
    #[arg(long, value_name = "DIR")]
    pub source: PathBuf,

    /// What the directory holds; decides the key prefix backups/<category>/.
    #[arg(long, value_enum)]
    pub category: Category,

    /// How many backups of this category to keep; older ones are deleted after a successful upload.
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    #[command(flatten)]
    pub bucket: BucketArgs,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub record: RecordArgs,

    #[command(flatten)]
    pub anomaly: AnomalyArgs,

    /// Smallest size band for the size check, as a percentage of the mean (keeps a perfectly
    /// steady history from alerting on a few bytes); 0 for a pure ±kσ test.
    #[arg(long, default_value_t = 1.0, value_name = "PCT", value_parser = super::common::non_negative_f64)]
    pub size_floor_pct: f64,

    /// Smallest duration band in seconds (keeps sub-second jitter from alerting); 0 for a pure ±kσ test.
    #[arg(long, default_value_t = 1.0, value_name = "SECS", value_parser = super::common::non_negative_f64)]
    pub duration_floor_secs: f64,

    /// Multipart part size in MiB (minimum 5). The archiver streams chunks of up to 8 MiB;
    /// S3 allows 10,000 parts, so part sizes double every 2,000 parts (up to 5 GiB), and
    /// the size is raised before the upload when a pre-walk finds a larger source.
    #[arg(long, default_value_t = 8, value_name = "MIB", value_parser = clap::value_parser!(u32).range(5..=5120))]
    pub part_size_mib: u32,

    /// Parts uploaded concurrently; memory is about (this + 4) × part size.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_in_flight: u32,

    /// Entries that may vanish or be unreadable during the walk (skipped and reported)
    /// before the backup fails.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_skipped: usize,

    /// Delete the intermediate version a sealed multipart upload leaves in a versioned
    /// bucket (and a stored version whose checksum mismatches) by version id. Needs
    /// s3:DeleteObjectVersion, which a bucket policy should deny the agent. By default the
    /// intermediate version is left for the lifecycle rule's NoncurrentVersionExpiration
    /// and reported.
    #[arg(long)]
    pub delete_intermediate: bool,

    /// Descend into mount points of other file systems below the source. By default the
    /// walk stays on the source's file system (like tar --one-file-system): mount points are
    /// archived as empty directories and reported.
    #[arg(long)]
    pub cross_file_systems: bool,

    /// gzip compression level (0 = store, 1 = fastest, 9 = smallest).
    #[arg(long, default_value_t = 6, value_name = "0-9", value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: u32,

    /// Print the summary as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The summary printed at the end (and the JSON of `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    /// The intermediate version of a sealed multipart upload left in the bucket as a
    /// noncurrent version (for lifecycle to expire), if any.
    pub intermediate_version: Option<String>,
    pub method: upload::Method,
    pub parts: i32,
    pub bytes: u64,
    pub uncompressed_bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub skipped: Vec<String>,
    pub changed_while_reading: Vec<String>,
    /// Extra names of files archived once (tar hard-link entries).
    pub hard_links: u64,
    /// Mount points of other file systems archived as empty directories.
    pub other_file_systems: Vec<String>,
    /// Entries listed but gone before they were read.
    pub vanished: Vec<String>,
    /// Entries that could not be read or changed type during the walk: `path (reason)`.
    pub unreadable: Vec<String>,
    /// Sparse files archived expanded (holes stored as zeros, restored in full).
    pub sparse_expanded: Vec<String>,
    pub duration_secs: f64,
    pub sha256: String,
    pub crc64nvme: String,
    pub s3_checksum: crate::compat::S3Check,
    pub kept: usize,
    pub deleted: Vec<String>,
    pub rotation: Vec<String>,
    pub size_check: Check,
    pub duration_check: Check,
    pub peak_rss_bytes: Option<u64>,
    pub history_file: PathBuf,
    pub log_file: PathBuf,
    pub notifications: bool,
}

/// A stored and rotated backup.
struct Done {
    key: String,
    uploaded: Uploaded,
    plan: rotation::Plan,
    explanation: Vec<String>,
}

/// Where a run got to before it failed (for history and the failure notification).
#[derive(Debug, Default)]
struct Progress {
    key: Option<String>,
    uploaded: Option<Uploaded>,
    duration_secs: f64,
}

fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Backup {
    fn spec(&self, key: &str) -> UploadSpec {
        let source_name = self
            .source
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        UploadSpec {
            bucket: self.bucket.bucket.clone(),
            key: key.to_string(),
            metadata: vec![
                (meta::CATEGORY.to_string(), self.category.to_string()),
                (meta::TOOL.to_string(), layout::tool_version()),
                (meta::SOURCE_NAME.to_string(), header_safe(&source_name)),
            ],
            part_size: (self.part_size_mib as usize) << 20,
            max_in_flight: self.max_in_flight as usize,
            copy_object_limit: upload::COPY_OBJECT_LIMIT,
            delete_intermediate: self.delete_intermediate,
        }
    }

    pub async fn run(&self, ctx: &Context, cancel: &Cancel) -> Result<(), AgentError> {
        let aws = Aws::connect(&self.aws).await;
        let (summary, history_result) = self.perform_until(ctx, &aws, cancel).await?;
        print_summary(&summary, self.json);
        history_result
    }

    /// Everything `run` does but printing: pre-flight, upload, rotation, history, anomaly
    /// checks and notifications, with clients the caller built (the harness passes its own).
    /// Returns the summary and whether the history record could be written (a stored backup
    /// whose history append failed is still stored).
    pub async fn perform(
        &self,
        ctx: &Context,
        aws: &Aws,
    ) -> Result<(Summary, Result<(), AgentError>), AgentError> {
        self.perform_until(ctx, aws, &Cancel::new()).await
    }

    /// [`Backup::perform`] until `cancel` is triggered: then the upload stops, its
    /// multipart upload is aborted, and the run fails with [`AgentError::Interrupted`]
    /// (recorded in the history and notified like any failure).
    pub async fn perform_until(
        &self,
        ctx: &Context,
        aws: &Aws,
        cancel: &Cancel,
    ) -> Result<(Summary, Result<(), AgentError>), AgentError> {
        let aws = &aws.with_expected_owner(self.aws.expected_owner.as_deref());
        let time = Utc::now();
        let notifier = Notifier::new(Some(aws.sns.clone()), self.record.topic_arn.clone());
        notifier.announce();
        let history_path = self.record.history_path();
        let earlier = match history::load(&history_path) {
            Ok(l) => {
                for (line, why) in &l.skipped {
                    tracing::warn!(file = %history_path.display(), line, why = %why, "history line skipped");
                }
                l.records
            }
            Err(e) => {
                tracing::warn!("{e}; anomaly detection has no history this run");
                Vec::new()
            }
        };
        tracing::info!(
            source = %self.source.display(),
            category = %self.category,
            bucket = %self.bucket.bucket,
            endpoint = %aws.endpoint,
            "backup starting"
        );
        let mut progress = Progress::default();
        match self.execute(aws, &mut progress, cancel).await {
            Ok(done) => Ok(self
                .finish(
                    ctx,
                    &notifier,
                    &history_path,
                    &earlier,
                    time,
                    progress.duration_secs,
                    done,
                )
                .await),
            Err(e) => {
                let what = format!("{} ({})", self.category, self.source.display());
                super::common::notify_failure(
                    &notifier,
                    ctx,
                    super::common::FailedRun {
                        command: "backup",
                        short: self.category.name(),
                        what: &what,
                        bucket: Some(&self.bucket.bucket),
                        key: progress.key.as_deref(),
                    },
                    &e,
                )
                .await;
                let u = progress.uploaded.as_ref();
                let record = Record::Backup(Box::new(BackupRecord {
                    time,
                    category: self.category,
                    bucket: self.bucket.bucket.clone(),
                    key: progress.key.clone(),
                    version_id: u.and_then(|u| u.version_id.clone()),
                    bytes: u.map(|u| u.summary.checksums.bytes).unwrap_or(0),
                    uncompressed_bytes: u.map(|u| u.summary.uncompressed_bytes).unwrap_or(0),
                    files: u.map(|u| u.summary.files).unwrap_or(0),
                    duration_secs: progress.duration_secs,
                    sha256: u.map(|u| u.summary.checksums.sha256.clone()),
                    crc64nvme: u.map(|u| u.summary.checksums.crc64nvme.clone()),
                    s3_checksum: u.map(|u| u.s3_check.describe()),
                    kept: None,
                    deleted: None,
                    // A stored backup whose rotation failed is still a good backup.
                    outcome: if u.is_some() {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    },
                    stage: Some(e.stage().to_string()),
                    error: Some(e.to_string()),
                    anomalies: vec![],
                    tool: layout::tool_version(),
                }));
                if let Err(he) = history::append(&history_path, &record) {
                    tracing::error!("{he}");
                }
                Err(e)
            }
        }
    }

    /// Pre-flight, upload, rotation.
    async fn execute(
        &self,
        aws: &Aws,
        progress: &mut Progress,
        cancel: &Cancel,
    ) -> Result<Done, AgentError> {
        preflight::source(&self.source)?;
        let checks = async {
            preflight::aws_side(aws, &self.bucket.bucket).await?;
            preflight::abort_rule(aws, &self.bucket.bucket, &layout::prefix(self.category)).await;
            Ok(())
        };
        or_cancelled(checks, cancel).await?;
        tracing::info!("pre-flight checks passed");

        let key = layout::key_for(self.category, Utc::now());
        progress.key = Some(key.clone());
        let mut spec = self.spec(&key);
        // Size the upload before the first byte goes up (finding 18).
        let (src, one_fs) = (self.source.clone(), !self.cross_file_systems);
        let estimate = or_cancelled(
            async move {
                tokio::task::spawn_blocking(move || archive::estimate(&src, one_fs))
                    .await
                    .map_err(|e| AgentError::Internal(format!("size estimate: {e}")))?
            },
            cancel,
        )
        .await?;
        tracing::info!(
            files = estimate.files,
            bytes = estimate.bytes,
            bound = estimate.archive_bound(),
            "source size estimated"
        );
        upload::size_for(&mut spec, &estimate)?;
        let started = Instant::now();
        let opts = ArchiveOptions {
            chunk_size: spec.part_size.min(8 << 20),
            level: self.level,
            max_skipped: self.max_skipped,
            one_file_system: !self.cross_file_systems,
        };
        let (rx, handle) = archive::spawn(self.source.clone(), opts, 2);
        let uploaded = upload::upload_stream(&aws.s3, &spec, rx, handle, cancel).await;
        progress.duration_secs = started.elapsed().as_secs_f64();
        let uploaded = uploaded?;
        tracing::info!(
            key = %key,
            bytes = uploaded.summary.checksums.bytes,
            files = uploaded.summary.files,
            parts = uploaded.parts,
            secs = format!("{:.2}", progress.duration_secs),
            s3_checksum = %uploaded.s3_check.describe(),
            "backup stored"
        );
        if let Some(v) = &uploaded.leftover_version {
            tracing::warn!(version = %v, "intermediate version left as a noncurrent version (billed until the lifecycle rule's NoncurrentVersionExpiration removes it)");
        }
        progress.uploaded = Some(uploaded.clone());

        let bucket = &self.bucket.bucket;
        let prefix = layout::prefix(self.category);
        let rotation_err = |e: AgentError| AgentError::Rotation {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            why: e.to_string(),
        };
        let objects = crate::s3::list_objects(&aws.s3, bucket, &prefix)
            .await
            .map_err(rotation_err)?;
        let plan = rotation::plan(
            &objects,
            self.category,
            self.keep as usize,
            Some(&key),
            Utc::now(),
        );
        let mut explanation = Vec::new();
        if !plan.delete.is_empty() {
            let deleted = crate::s3::delete_keys(&aws.s3, bucket, &plan.delete)
                .await
                .map_err(rotation_err)?;
            if !deleted.errors.is_empty() {
                let list: Vec<String> = deleted
                    .errors
                    .iter()
                    .map(|(k, e)| format!("{k}: {e}"))
                    .collect();
                for line in &list {
                    tracing::error!("rotation could not delete {line}");
                }
                return Err(AgentError::Rotation {
                    bucket: bucket.clone(),
                    prefix,
                    why: format!(
                        "{} key(s) could not be deleted: {}",
                        list.len(),
                        notify::join_some(&list, 20)
                    ),
                });
            }
            let versioning = crate::s3::versioning(&aws.s3, bucket)
                .await
                .map_err(rotation_err)?;
            let rules = crate::s3::lifecycle_rules(&aws.s3, bucket)
                .await
                .map_err(rotation_err)?;
            explanation = rotation::explain(plan.delete.len(), &prefix, versioning, &rules);
            tracing::info!(
                deleted = plan.delete.len(),
                delete_markers = deleted.delete_markers,
                "old backups deleted: {}",
                plan.delete.join(", ")
            );
        }
        if let Some(w) = rotation::future_warning(&plan.future) {
            tracing::warn!("{w}");
            explanation.push(w);
        }
        for line in &explanation {
            tracing::info!("rotation: {line}");
        }
        if !plan.ignored.is_empty() {
            tracing::info!(
                count = plan.ignored.len(),
                "objects under the prefix that are not backups were left alone"
            );
        }
        Ok(Done {
            key,
            uploaded,
            plan,
            explanation,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        ctx: &Context,
        notifier: &Notifier,
        history_path: &Path,
        earlier: &[Record],
        time: chrono::DateTime<Utc>,
        duration_secs: f64,
        done: Done,
    ) -> (Summary, Result<(), AgentError>) {
        let Done {
            key: stored_key,
            uploaded: u,
            plan,
            explanation,
        } = done;
        let previous = history::successful_backups(earlier, self.category, &self.bucket.bucket);
        let t = self.anomaly.thresholds();
        // Earlier values of a metric, leaving out runs flagged on it (see `anomaly::baseline`).
        let baseline = |metric: &str, value: fn(&BackupRecord) -> f64| {
            let series: Vec<(f64, bool)> = previous
                .iter()
                .map(|b| (value(b), b.anomalies.iter().any(|a| a == metric)))
                .collect();
            anomaly::baseline(&series, t.min_history)
        };
        let sizes = baseline("size", |b| b.bytes as f64);
        let durations = baseline("duration", |b| b.duration_secs);
        let size_check = anomaly::check(
            "size",
            "bytes",
            &sizes,
            u.summary.checksums.bytes as f64,
            &t,
            Side::Both,
            Floor {
                fraction: self.size_floor_pct / 100.0,
                absolute: 0.0,
            },
        );
        let duration_check = anomaly::check(
            "duration",
            "s",
            &durations,
            duration_secs,
            &t,
            Side::Both,
            Floor {
                fraction: 0.0,
                absolute: self.duration_floor_secs,
            },
        );
        let anomalies: Vec<String> = [&size_check, &duration_check]
            .iter()
            .filter_map(|c| match c {
                Check::Anomaly(f) => Some(f.metric.clone()),
                _ => None,
            })
            .collect();
        let record = Record::Backup(Box::new(BackupRecord {
            time,
            category: self.category,
            bucket: self.bucket.bucket.clone(),
            key: Some(stored_key.clone()),
            version_id: u.version_id.clone(),
            bytes: u.summary.checksums.bytes,
            uncompressed_bytes: u.summary.uncompressed_bytes,
            files: u.summary.files,
            duration_secs,
            sha256: Some(u.summary.checksums.sha256.clone()),
            crc64nvme: Some(u.summary.checksums.crc64nvme.clone()),
            s3_checksum: Some(u.s3_check.describe()),
            kept: Some(plan.keep.len()),
            deleted: Some(plan.delete.len()),
            outcome: Outcome::Success,
            stage: None,
            error: None,
            anomalies: anomalies.clone(),
            tool: layout::tool_version(),
        }));
        let history_result = history::append(history_path, &record);

        let what = format!("backup {}", self.category);
        if let Check::Insufficient { have, need } = &size_check {
            tracing::info!(
                "anomaly detection: {have} earlier successful run(s) in history, {need} needed"
            );
        }
        for c in [&size_check, &duration_check] {
            if let Check::Anomaly(f) = c {
                tracing::warn!(metric = %f.metric, current = f.current, mean = f.mean, sigma = f.std_dev, "anomaly");
                notifier
                    .send(&notify::anomaly(&what, Some(&stored_key), f))
                    .await;
            }
        }
        let success = notify::Success {
            bucket: self.bucket.bucket.clone(),
            key: stored_key.clone(),
            version_id: u.version_id.clone(),
            bytes: u.summary.checksums.bytes,
            uncompressed_bytes: u.summary.uncompressed_bytes,
            files: u.summary.files,
            duration_secs,
            kept: plan.keep.len(),
            deleted: plan.delete.len(),
            sha256: u.summary.checksums.sha256.clone(),
            s3_check: u.s3_check.describe(),
            rotation: explanation.clone(),
            intermediate_version: u.leftover_version.clone(),
            not_archived: u
                .summary
                .vanished
                .iter()
                .map(|p| format!("{p} (vanished)"))
                .chain(u.summary.unreadable.iter().cloned())
                .collect(),
        };
        notifier
            .send(&notify::success(self.category.name(), &success))
            .await;

        let summary = Summary {
            bucket: self.bucket.bucket.clone(),
            key: stored_key,
            version_id: u.version_id.clone(),
            intermediate_version: u.leftover_version.clone(),
            method: u.method.clone(),
            parts: u.parts,
            bytes: u.summary.checksums.bytes,
            uncompressed_bytes: u.summary.uncompressed_bytes,
            files: u.summary.files,
            dirs: u.summary.dirs,
            symlinks: u.summary.symlinks,
            skipped: u.summary.skipped.clone(),
            changed_while_reading: u.summary.changed.clone(),
            hard_links: u.summary.hard_links,
            other_file_systems: u.summary.other_file_systems.clone(),
            vanished: u.summary.vanished.clone(),
            unreadable: u.summary.unreadable.clone(),
            sparse_expanded: u.summary.sparse.clone(),
            duration_secs,
            sha256: u.summary.checksums.sha256.clone(),
            crc64nvme: u.summary.checksums.crc64nvme.clone(),
            s3_checksum: u.s3_check.clone(),
            kept: plan.keep.len(),
            deleted: plan.delete.clone(),
            rotation: explanation,
            size_check,
            duration_check,
            peak_rss_bytes: crate::rss::peak_bytes(),
            history_file: history_path.to_path_buf(),
            log_file: ctx.log_file.clone(),
            notifications: notifier.enabled(),
        };
        (summary, history_result)
    }
}

fn check_line(c: &Check) -> String {
    match c {
        Check::Insufficient { have, need } => {
            format!("not judged ({have} earlier runs, {need} needed)")
        }
        Check::Normal(f) => format!(
            "normal (mean {:.3}, σ {:.3}, band [{:.3}, {:.3}])",
            f.mean, f.std_dev, f.lower, f.upper
        ),
        Check::Anomaly(f) => format!(
            "ANOMALY {:?}: {:.3} vs mean {:.3} ± {}σ (σ {:.3}, band [{:.3}, {:.3}])",
            f.direction.unwrap_or(anomaly::Direction::Above),
            f.current,
            f.mean,
            f.sigma,
            f.std_dev,
            f.lower,
            f.upper
        ),
    }
}

fn print_summary(s: &Summary, json: bool) {
    if json {
        match serde_json::to_string(s) {
            Ok(j) => println!("{j}"),
            Err(e) => tracing::error!("cannot print the summary as JSON: {e}"),
        }
        return;
    }
    println!("backup stored: s3://{}/{}", s.bucket, s.key);
    if let Some(v) = &s.version_id {
        println!("  version    {v}");
    }
    println!(
        "  archive    {} from {} files ({} uncompressed), {} part(s), {:.2} s, {:.1} MB/s",
        units::bytes(s.bytes),
        s.files,
        units::bytes(s.uncompressed_bytes),
        s.parts,
        s.duration_secs,
        units::mb_per_s(s.uncompressed_bytes, s.duration_secs)
    );
    if let Some(v) = &s.intermediate_version {
        println!(
            "  leftover   intermediate version {v} (noncurrent; the lifecycle rule expires it)"
        );
    }
    println!("  sha256     {}", s.sha256);
    println!("  s3         {}", s.s3_checksum.describe());
    println!("  kept       {} (deleted now: {})", s.kept, s.deleted.len());
    for d in &s.deleted {
        println!("    deleted  {d}");
    }
    for line in &s.rotation {
        println!("  rotation   {line}");
    }
    println!("  size       {}", check_line(&s.size_check));
    println!("  duration   {}", check_line(&s.duration_check));
    if let Some(p) = s.peak_rss_bytes {
        println!("  peak RSS   {}", units::bytes(p));
    }
    if !s.skipped.is_empty() {
        println!("  skipped    {} special file(s)", s.skipped.len());
    }
    if !s.vanished.is_empty() {
        println!(
            "  vanished   {} entr(ies) gone before they were read",
            s.vanished.len()
        );
    }
    if !s.unreadable.is_empty() {
        println!(
            "  unreadable {} entr(ies) not archived:",
            s.unreadable.len()
        );
        for p in &s.unreadable {
            println!("    {p}");
        }
    }
    if s.hard_links > 0 {
        println!(
            "  hard links {} extra name(s) stored as links",
            s.hard_links
        );
    }
    if !s.other_file_systems.is_empty() {
        println!(
            "  mounts     {} mount point(s) of other file systems archived empty (--cross-file-systems descends):",
            s.other_file_systems.len()
        );
        for p in &s.other_file_systems {
            println!("    {p}");
        }
    }
    if !s.sparse_expanded.is_empty() {
        println!(
            "  sparse     {} sparse file(s) archived expanded (restored in full):",
            s.sparse_expanded.len()
        );
        for p in &s.sparse_expanded {
            println!("    {p}");
        }
    }
    if !s.changed_while_reading.is_empty() {
        println!(
            "  changed    {} file(s) changed while read",
            s.changed_while_reading.len()
        );
    }
    println!("  history    {}", s.history_file.display());
    println!("  log        {}", s.log_file.display());
    if !s.notifications {
        println!(
            "  notify     disabled (no --topic-arn / SNS_TOPIC_ARN): messages were only logged"
        );
    }
}
