//! `autobackup restore`: find a backup, download it, verify its checksum and unpack it.
//!
//! Floor 8: may import modules of floors 0 to 7 only; it imports `aws`, `cli::common`, `errors`,
//! `history`, `layout`, `notify`, `preflight`, `restore`, `restore::find`, `restore::place`,
//! `restore::unpack`, `signals`, `units`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::common::{BucketArgs, Context, RecordArgs};
use crate::aws::{Aws, AwsArgs};
use crate::errors::AgentError;
use crate::layout::Category;
use crate::notify::Notifier;
use crate::restore::{self, At, Expected, Limits, UnpackOptions};
use crate::signals::{or_cancelled, Cancel};
use crate::{history, preflight, units};

#[derive(Args, Debug, Clone)]
pub struct Restore {
    /// Category of the backup (prefix backups/<category>/).
    #[arg(long, value_enum)]
    pub category: Category,

    /// Which backup: `latest`, a key (backups/<category>/...), or a version id (also of a
    /// backup rotated away in a versioned bucket).
    #[arg(long, default_value = "latest", value_name = "latest|KEY|VERSION")]
    pub at: At,

    /// Directory to restore into. Must not exist or be empty, unless --force.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,

    /// Replace an existing non-empty target (only after the download verified).
    #[arg(long)]
    pub force: bool,

    /// Restore even when no reference checksum exists (no history record, trusted
    /// metadata or S3 full-object checksum).
    #[arg(long)]
    pub allow_unverified: bool,

    /// Verify against the object's sha256 metadata when the local history has no record of
    /// the backup. Warns: anyone who can write the bucket can also write the metadata.
    #[arg(long)]
    pub trust_metadata: bool,

    /// Restore owners (uid/gid from the archive) and setuid/setgid/sticky bits. Needs root,
    /// and a checksum reference from this host's history (or --trust-bucket). Without it
    /// modes are masked with 0o777 and the files belong to the caller.
    #[arg(long)]
    pub preserve_owner: bool,

    /// Allow --preserve-owner with a checksum reference the bucket supplies (S3's stored
    /// CRC64NVME or trusted metadata), which whoever can write the bucket also sets: they
    /// could then restore root-owned setuid files.
    #[arg(long)]
    pub trust_bucket: bool,

    /// Most entries (files, directories, links, headers) the archive may hold.
    #[arg(long, default_value_t = Limits::default().max_entries, value_name = "N")]
    pub max_entries: u64,

    /// Most bytes the archive's files may add up to (default 1 TiB).
    #[arg(long, default_value_t = Limits::default().max_bytes, value_name = "BYTES")]
    pub max_bytes: u64,

    /// Longest path or link target, in bytes.
    #[arg(long, default_value_t = Limits::default().max_path, value_name = "BYTES")]
    pub max_path_bytes: u64,

    /// Largest GNU long-name or PAX extension header, in bytes (held in memory).
    #[arg(long, default_value_t = Limits::default().max_extension, value_name = "BYTES")]
    pub max_extension_bytes: u64,

    /// Bytes the target's file system must keep free; a file that would leave less is
    /// refused before it is written (0: no check).
    #[arg(long, default_value_t = Limits::default().min_free, value_name = "BYTES")]
    pub min_free_bytes: u64,

    #[command(flatten)]
    pub bucket: BucketArgs,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub record: RecordArgs,

    /// Print the result as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Restore {
    /// The unpack limits and owner handling from the command line.
    pub fn unpack_options(&self) -> UnpackOptions {
        UnpackOptions {
            limits: Limits {
                max_entries: self.max_entries,
                max_bytes: self.max_bytes,
                max_path: self.max_path_bytes,
                max_extension: self.max_extension_bytes,
                min_free: self.min_free_bytes,
            },
            preserve_owner: self.preserve_owner,
        }
    }

    pub async fn run(&self, ctx: &Context, cancel: &Cancel) -> Result<(), AgentError> {
        let aws = Aws::connect(&self.aws).await;
        let (r, secs) = self.perform_until(ctx, &aws, cancel).await?;
        self.print(&r, secs)
    }

    /// Everything `run` does but printing, with clients the caller built: returns what was
    /// restored and how long it took (seconds). Failures are notified as in `run`.
    pub async fn perform(
        &self,
        ctx: &Context,
        aws: &Aws,
    ) -> Result<(restore::Restored, f64), AgentError> {
        self.perform_until(ctx, aws, &Cancel::new()).await
    }

    /// [`Restore::perform`] until `cancel` is triggered: then the download stops, the
    /// staging tree is removed and the run fails with [`AgentError::Interrupted`].
    pub async fn perform_until(
        &self,
        ctx: &Context,
        aws: &Aws,
        cancel: &Cancel,
    ) -> Result<(restore::Restored, f64), AgentError> {
        let aws = &aws.with_expected_owner(self.aws.expected_owner.as_deref());
        let notifier = Notifier::new(Some(aws.sns.clone()), self.record.topic_arn.clone());
        let mut key = None;
        let result = self.execute(aws, &mut key, cancel).await;
        if let Err(e) = &result {
            // A refused overwrite is the user's choice, not an incident.
            if !matches!(e, AgentError::TargetExists { .. }) {
                let what = format!("{} into {}", self.category, self.to.display());
                super::common::notify_failure(
                    &notifier,
                    ctx,
                    super::common::FailedRun {
                        command: "restore",
                        short: self.category.name(),
                        what: &what,
                        bucket: Some(&self.bucket.bucket),
                        key: key.as_deref(),
                    },
                    e,
                )
                .await;
            }
        }
        result
    }

    async fn execute(
        &self,
        aws: &Aws,
        key_out: &mut Option<String>,
        cancel: &Cancel,
    ) -> Result<(restore::Restored, f64), AgentError> {
        let started = Instant::now();
        // Refuse early, before downloading anything.
        if self.preserve_owner {
            restore::check_preserve_owner(restore::euid())?;
        }
        let state = restore::check_target(&self.to, self.force)?;
        or_cancelled(preflight::aws_side(aws, &self.bucket.bucket), cancel).await?;
        let history_path = self.record.history_path();
        let records = match history::load(&history_path) {
            Ok(l) => l.records,
            Err(e) => {
                tracing::warn!("{e}; the history cannot supply a checksum");
                Vec::new()
            }
        };
        // `latest` prefers the last backup this host's history recorded as successful.
        let history_latest =
            history::successful_backups(&records, self.category, &self.bucket.bucket)
                .last()
                .and_then(|b| b.key.clone());
        // The versions this host's history recorded: a key it knows is restored as recorded.
        let recorded: std::collections::HashMap<String, String> =
            history::successful_backups(&records, self.category, &self.bucket.bucket)
                .into_iter()
                .filter_map(|b| Some((b.key.clone()?, b.version_id.clone()?)))
                .collect();
        let target = or_cancelled(
            restore::resolve_preferring(
                &aws.s3,
                &self.bucket.bucket,
                self.category,
                &self.at,
                history_latest.as_deref(),
                &recorded,
            ),
            cancel,
        )
        .await?;
        *key_out = Some(target.key.clone());
        let from_history = history::find_backup(&records, &target.bucket, &target.key)
            .and_then(|r| r.sha256.clone());
        let expected = Expected::choose(&target, from_history.as_deref(), self.trust_metadata);
        let from_the_history =
            matches!(&expected, Expected::Sha256 { source, .. } if source == "history");
        if self.preserve_owner && !from_the_history && !self.trust_bucket {
            return Err(AgentError::Config(format!(
                "--preserve-owner restores owners and setuid/setgid bits from the archive, so it needs a checksum reference from this host's history; s3://{}/{} has none here (its reference would come from the bucket, which whoever can write it also sets); pass --trust-bucket to restore owners anyway",
                target.bucket, target.key
            )));
        }
        if expected == Expected::Nothing && !self.allow_unverified {
            let has_metadata = target
                .metadata
                .get(crate::layout::meta::SHA256)
                .is_some_and(|h| !h.is_empty());
            let hint = if has_metadata {
                "none trusted: the object has sha256 metadata, pass --trust-metadata to verify against it, or --allow-unverified to restore anyway"
            } else {
                "none available; pass --allow-unverified to restore anyway"
            };
            return Err(AgentError::Checksum {
                what: format!("s3://{}/{}", target.bucket, target.key),
                expected: "a reference checksum (history record, trusted sha256 metadata or S3 full-object checksum)".into(),
                actual: hint.into(),
            });
        }
        tracing::info!(
            key = %target.key,
            version = target.version_id.as_deref().unwrap_or("-"),
            bytes = target.size,
            to = %self.to.display(),
            "restore starting"
        );
        let r = restore::restore(
            &aws.s3,
            &target,
            &expected,
            &self.to,
            state,
            &self.unpack_options(),
            cancel,
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        if r.unpacked.special_bits_stripped > 0 {
            tracing::warn!(
                entries = r.unpacked.special_bits_stripped,
                "setuid/setgid/sticky bits were not restored (pass --preserve-owner, as root, to keep them)"
            );
        }
        tracing::info!(files = r.unpacked.files, verified = %r.verified, secs = format!("{secs:.2}"), "restore complete");
        Ok((r, secs))
    }

    fn print(&self, r: &restore::Restored, secs: f64) -> Result<(), AgentError> {
        if self.json {
            let mut v = serde_json::to_value(r).map_err(|e| AgentError::Internal(e.to_string()))?;
            v["duration_secs"] = serde_json::json!(secs);
            println!("{v}");
        } else {
            println!(
                "restored s3://{}/{} into {}",
                self.bucket.bucket,
                r.key,
                r.to.display()
            );
            if let Some(v) = &r.version_id {
                println!("  version    {v}");
            }
            println!(
                "  unpacked   {} files, {} dirs, {} symlinks, {} from {} archive in {secs:.2} s",
                r.unpacked.files,
                r.unpacked.dirs,
                r.unpacked.symlinks,
                units::bytes(r.unpacked.bytes),
                units::bytes(r.archive_bytes)
            );
            println!("  verified   {}", r.verified);
            if r.unpacked.special_bits_stripped > 0 {
                println!(
                    "  modes      setuid/setgid/sticky bits not restored on {} entries (--preserve-owner restores them, as root)",
                    r.unpacked.special_bits_stripped
                );
            }
            for w in &r.warnings {
                println!("  warning    {w}");
            }
        }
        Ok(())
    }
}
