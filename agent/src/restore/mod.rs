//! Restore: find the backup (`latest`, a key or a version id), stream it from S3 into a
//! blocking unpacker while hashing it, and move the tree into place only if the archive's
//! checksum matches. A backup that cannot be restored is no backup.
//!
//! **Staging.** The tree is unpacked into a hidden staging directory next to the target,
//! `.NAME.autobackup-partial-PID-NANOS-RANDOM`, created exclusively with mode 0700, so no
//! other user can reach anything inside while it is unpacked, and no leftover of an earlier
//! (crashed) run gets in the way; leftovers found are reported as warnings. Inside,
//! directories are created 0700 and files 0600; the archived modes, owners and directory
//! times are applied only after the checksum verified. On a mismatch or any error the
//! staging tree is removed (read-only directories are made writable first) and the target
//! is untouched; a removal that fails is reported in the error, with the path left behind.
//! An existing non-empty target is refused unless `force`, in which case it is moved to
//! the staging name plus `.old` (unique per run) only after a verified unpack, then removed.
//!
//! **The restored directory** gets the mode, owner and mtime of the archive's `./` entry
//! (the source directory itself, see [`crate::archive::ROOT_ENTRY`]). An archive without
//! one (written before the agent archived the root) gives it the mode of the directory it
//! replaces, else 0700: never wider than what was there.
//!
//! **Modes and owners.** Without `preserve_owner`, modes are masked with 0o777: setuid,
//! setgid and sticky bits are never restored (the count of entries that lost one is in
//! [`Unpacked::special_bits_stripped`]), and everything belongs to the caller. With it
//! (root only), owners come from the archive's uid/gid and the full mode is restored.
//!
//! **Limits.** [`Limits`] bound the number of entries, the total file bytes, path and link
//! lengths, and the size of GNU long-name/PAX extension headers, which are read by this
//! module within their limit (the tar reader would buffer any size). Exceeding one fails
//! the restore with [`AgentError::UnpackLimit`] (exit 15) and removes the staging tree.
//! Entries that would land outside the target (absolute paths are made relative, `..` is
//! refused), paths through a symlink, and entry types other than files, directories,
//! symlinks and hard links (devices, FIFOs, GNU sparse files) are refused.
//!
//! **Reference checksum**, in this order ([`Expected::choose`]):
//! 1. the SHA-256 in the agent's local history for that bucket and key: the one reference
//!    someone who can write the bucket cannot change;
//! 2. the object's `sha256` metadata, only when the caller trusts it (`--trust-metadata`,
//!    which warns: whoever can PutObject also writes the metadata);
//! 3. S3's stored full-object CRC64NVME (also checked by the SDK while streaming): it
//!    proves the bytes are the ones S3 stored, not that the agent wrote them;
//! 4. nothing: the restore fails unless unverified restores are allowed.
//!
//! When the history and the metadata disagree, the history wins and a warning is logged.
//!
//! Floor 7: may import modules of floors 0 to 6 only; it imports `aws`, `errors`, `restore::find`,
//! `restore::pending`, `restore::place`, `restore::unpack`, `signals`.

use std::path::{Path, PathBuf};

use aws_sdk_s3::types::ChecksumMode;
use bytes::Bytes;
use tokio::sync::mpsc;

pub use find::{latest_of, resolve, resolve_preferring, At, Expected, Target};
pub use pending::Pending;
pub use place::{
    check_preserve_owner, check_target, euid, remove_tree, unpack_verify_place, Placed, TargetState,
};
pub use unpack::{unpack_stream, Limit, Limits, Unpack, UnpackError, UnpackOptions, Unpacked};

use crate::aws::classify;
use crate::errors::AgentError;

mod find;
mod pending;
mod place;
#[cfg(test)]
mod staging_tests;
#[cfg(test)]
mod tests;
mod unpack;

/// Result of a restore.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub key: String,
    pub version_id: Option<String>,
    pub to: PathBuf,
    pub archive_bytes: u64,
    pub unpacked: Unpacked,
    pub verified: String,
    pub sha256: String,
    /// Things the restore could not tidy up (a replaced tree left behind, leftover staging
    /// directories of earlier runs); the restore itself succeeded.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Downloads, verifies and unpacks `target` into `to`. When `cancel` is triggered the
/// download stops, the unpacker fails on the interrupted stream and removes its staging
/// tree (the target is untouched), and the result is [`AgentError::Interrupted`] (inside
/// [`AgentError::Cleanup`] if the staging tree could not be removed).
#[allow(clippy::too_many_arguments)]
pub async fn restore(
    s3: &aws_sdk_s3::Client,
    target: &Target,
    expected: &Expected,
    to: &Path,
    state: TargetState,
    opts: &UnpackOptions,
    cancel: &crate::signals::Cancel,
) -> Result<Restored, AgentError> {
    let what = format!("s3://{}/{}", target.bucket, target.key);
    let get = s3
        .get_object()
        .bucket(&target.bucket)
        .key(&target.key)
        .set_version_id(target.version_id.clone())
        .checksum_mode(ChecksumMode::Enabled)
        .send();
    let resp = tokio::select! {
        r = get => r,
        s = cancel.cancelled() => return Err(crate::signals::Cancel::error(s)),
    }
    .map_err(|e| AgentError::Aws {
        service: "S3",
        op: "GetObject",
        target: what.clone(),
        why: classify(&e).text(),
    })?;
    let mut body = resp.body;
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let unpacker = {
        let (key, what, expected, to, opts) = (
            target.key.clone(),
            what.clone(),
            expected.clone(),
            to.to_path_buf(),
            *opts,
        );
        tokio::task::spawn_blocking(move || {
            unpack_verify_place(rx, &key, &what, &expected, &to, state, &opts)
        })
    };
    let mut download_error: Option<String> = None;
    let mut interrupted = None;
    loop {
        let next = tokio::select! {
            c = body.next() => c,
            s = cancel.cancelled() => {
                // The unpacker fails on this and removes its staging tree.
                let _ = tx.send(Err(format!("interrupted by {s}"))).await;
                interrupted = Some(s);
                break;
            }
        };
        let Some(chunk) = next else { break };
        match chunk {
            Ok(b) => {
                if tx.send(Ok(b)).await.is_err() {
                    // The unpacker stopped (it failed); its error tells why.
                    break;
                }
            }
            Err(e) => {
                let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                let _ = tx.send(Err(text.clone())).await;
                download_error = Some(text);
                break;
            }
        }
    }
    drop(tx);
    let placed = unpacker
        .await
        .map_err(|e| AgentError::Internal(format!("unpack thread: {e}")))?;
    let placed = match (placed, download_error, interrupted) {
        (Ok(p), _, _) => p,
        (Err(unpack_error), _, Some(s)) => {
            let err = crate::signals::Cancel::error(s);
            tracing::warn!(
                signal = s.name(),
                "restore interrupted; the target is untouched"
            );
            return Err(match unpack_error {
                AgentError::Cleanup { path, why, .. } => AgentError::Cleanup {
                    error: Box::new(err),
                    path,
                    why,
                },
                _ => err,
            });
        }
        (Err(unpack_error), Some(e), None) => {
            // The SDK validates S3's full-object checksum while streaming the body.
            let err = if e.to_ascii_lowercase().contains("checksum") {
                AgentError::Checksum {
                    what: what.clone(),
                    expected: "the checksum S3 stored".into(),
                    actual: e,
                }
            } else {
                AgentError::Aws {
                    service: "S3",
                    op: "GetObject (body)",
                    target: what,
                    why: e,
                }
            };
            // Keep a failed cleanup visible under the download error.
            return Err(match unpack_error {
                AgentError::Cleanup { path, why, .. } => AgentError::Cleanup {
                    error: Box::new(err),
                    path,
                    why,
                },
                _ => err,
            });
        }
        (Err(e), None, None) => return Err(e),
    };
    Ok(Restored {
        key: target.key.clone(),
        version_id: target.version_id.clone(),
        to: to.to_path_buf(),
        archive_bytes: placed.checksums.bytes,
        unpacked: placed.unpacked,
        verified: placed.verified,
        sha256: placed.checksums.sha256,
        warnings: placed.warnings,
    })
}
