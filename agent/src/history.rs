//! The history file: one JSON object per line, appended once per run, never rewritten.
//!
//! Format (JSON lines, UTF-8). Every line has `"kind"`:
//!
//! - `"backup"`: `time` (RFC 3339 UTC, start of the run), `category`, `bucket`, `key`,
//!   `version_id`, `bytes` (archive size), `uncompressed_bytes`, `files`, `duration_secs`,
//!   `sha256` (hex, of the archive), `crc64nvme` (base64), `s3_checksum` (what S3 stored and
//!   whether it matched), `kept`, `deleted`, `outcome` (`success` | `failure`), `stage` and
//!   `error` on failure, `anomalies` (metric names), `tool`.
//! - `"cost"`: `time`, `bucket`, `current_bytes`, `noncurrent_bytes`, `objects`,
//!   `monthly_usd`, `projected_12m_usd`, `standard_12m_usd`, `tool`.
//!
//! Fields may be added later; readers ignore unknown fields and unknown kinds, and skip
//! (and report) lines that do not parse, so one torn line never hides the rest.
//!
//! Floor 2: may import modules of floors 0 to 1 only; it imports `errors`, `layout`.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::AgentError;
use crate::layout::Category;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub time: DateTime<Utc>,
    pub category: Category,
    pub bucket: String,
    pub key: Option<String>,
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub uncompressed_bytes: u64,
    #[serde(default)]
    pub files: u64,
    pub duration_secs: f64,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub crc64nvme: Option<String>,
    #[serde(default)]
    pub s3_checksum: Option<String>,
    #[serde(default)]
    pub kept: Option<usize>,
    #[serde(default)]
    pub deleted: Option<usize>,
    pub outcome: Outcome,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub anomalies: Vec<String>,
    pub tool: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRecord {
    pub time: DateTime<Utc>,
    pub bucket: String,
    pub current_bytes: u64,
    pub noncurrent_bytes: u64,
    pub objects: u64,
    pub monthly_usd: f64,
    pub projected_12m_usd: f64,
    pub standard_12m_usd: f64,
    pub tool: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    /// Boxed: a backup record is several times larger than a cost record.
    Backup(Box<BackupRecord>),
    Cost(CostRecord),
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// (line number, why) of lines skipped.
    pub skipped: Vec<(usize, String)>,
}

/// Default location: `$AUTOBACKUP_STATE_DIR` (made absolute), else
/// `$XDG_STATE_HOME/autobackup` (an absolute value only, as the XDG spec says), else
/// `~/.local/state/autobackup`. Never the current directory: with `HOME` unset or relative
/// (systemd units, whose cwd is `/`) the home directory comes from the password database,
/// so the history, the restore's trust anchor, does not depend on where the agent runs.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AUTOBACKUP_STATE_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        return std::path::absolute(&d).unwrap_or(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return d.join("autobackup");
    }
    home_dir().join(".local/state/autobackup")
}

/// `HOME` when absolute, else the effective user's home from the password database, else
/// a path that cannot be created (so the caller fails with a clear error instead of
/// writing into the current directory).
fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
    {
        return h;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    passwd_home(unsafe { libc::geteuid() })
        .filter(|h| h.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/nonexistent-home-set-HOME-or-AUTOBACKUP_STATE_DIR"))
}

fn passwd_home(uid: libc::uid_t) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: getpwuid_r writes into `pw` and `buf`, both live for the call; `result` is
    // null or points at `pw`.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pw.pw_dir);
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
}

/// Creates `dir` and its missing parents, private to the user (0700).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

pub fn default_path() -> PathBuf {
    state_dir().join("history.jsonl")
}

/// Appends one record as one line (a single `write` on an `O_APPEND` file, so concurrent
/// runs do not interleave lines). A new file is created 0600, new directories 0700.
pub fn append(path: &Path, record: &Record) -> Result<(), AgentError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| AgentError::local("history directory", dir, e))?;
    }
    let mut line =
        serde_json::to_string(record).map_err(|e| AgentError::Internal(e.to_string()))?;
    line.push('\n');
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| AgentError::local("history file", path, e))?
    };
    f.write_all(line.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| AgentError::local("history file", path, e))
}

/// Reads every record; a missing file is an empty history.
pub fn load(path: &Path) -> Result<Loaded, AgentError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(AgentError::local("history file", path, e)),
    };
    Ok(parse(&text))
}

/// Parses history text (see the module docs).
pub fn parse(text: &str) -> Loaded {
    let mut out = Loaded::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                out.skipped.push((i + 1, e.to_string()));
                continue;
            }
        };
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("backup") | Some("cost") => match serde_json::from_value::<Record>(value) {
                Ok(r) => out.records.push(r),
                Err(e) => out.skipped.push((i + 1, e.to_string())),
            },
            // Unknown kinds come from newer versions: not an error.
            Some(_) => {}
            None => out.skipped.push((i + 1, "no \"kind\" field".into())),
        }
    }
    out
}

/// Successful backups of `category` into `bucket`, oldest first.
pub fn successful_backups<'a>(
    records: &'a [Record],
    category: Category,
    bucket: &str,
) -> Vec<&'a BackupRecord> {
    let mut v: Vec<&BackupRecord> = records
        .iter()
        .filter_map(|r| match r {
            Record::Backup(b)
                if b.category == category
                    && b.bucket == bucket
                    && b.outcome == Outcome::Success =>
            {
                Some(b.as_ref())
            }
            _ => None,
        })
        .collect();
    v.sort_by_key(|b| b.time);
    v
}

/// Cost records of `bucket`, oldest first.
pub fn cost_records<'a>(records: &'a [Record], bucket: &str) -> Vec<&'a CostRecord> {
    let mut v: Vec<&CostRecord> = records
        .iter()
        .filter_map(|r| match r {
            Record::Cost(c) if c.bucket == bucket => Some(c),
            _ => None,
        })
        .collect();
    v.sort_by_key(|c| c.time);
    v
}

/// The most recent successful backup record for `key` (for its checksum on restore).
pub fn find_key<'a>(records: &'a [Record], key: &str) -> Option<&'a BackupRecord> {
    records
        .iter()
        .rev()
        .filter_map(|r| match r {
            Record::Backup(b) if b.key.as_deref() == Some(key) && b.outcome == Outcome::Success => {
                Some(b.as_ref())
            }
            _ => None,
        })
        .next()
}

/// The latest successful backup record of `key` in `bucket` (the same key in another
/// bucket is another backup): the restore's preferred checksum reference.
pub fn find_backup<'a>(records: &'a [Record], bucket: &str, key: &str) -> Option<&'a BackupRecord> {
    records
        .iter()
        .rev()
        .filter_map(|r| match r {
            Record::Backup(b)
                if b.bucket == bucket
                    && b.key.as_deref() == Some(key)
                    && b.outcome == Outcome::Success =>
            {
                Some(b.as_ref())
            }
            _ => None,
        })
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// L8: without `HOME` (or with an empty or relative one, and a relative
    /// `XDG_STATE_HOME`) the state directory is absolute and not under the current
    /// directory: it comes from the password database. Checked in child processes of this
    /// test binary, whose environment and cwd are set for it.
    #[test]
    fn the_state_dir_never_depends_on_the_cwd() {
        const ENV: &str = "AUTOBACKUP_TEST_STATE_DIR_CHILD";
        if std::env::var_os(ENV).is_some() {
            let d = state_dir();
            let cwd = std::env::current_dir().unwrap();
            assert!(d.is_absolute(), "{}", d.display());
            assert!(
                !d.starts_with(&cwd),
                "{} is under {}",
                d.display(),
                cwd.display()
            );
            assert!(default_path().is_absolute());
            return;
        }
        let cwd = tempfile::tempdir().unwrap();
        let cases: [(Option<&str>, Option<&str>); 3] = [
            (None, None),
            (Some(""), None),
            (Some("relative/home"), Some("relative/state")),
        ];
        for (home, xdg) in cases {
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args([
                "--exact",
                "history::tests::the_state_dir_never_depends_on_the_cwd",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, "1")
            .env_remove("HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("AUTOBACKUP_STATE_DIR")
            .current_dir(cwd.path());
            if let Some(h) = home {
                cmd.env("HOME", h);
            }
            if let Some(x) = xdg {
                cmd.env("XDG_STATE_HOME", x);
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("1 passed"),
                "HOME={home:?} XDG_STATE_HOME={xdg:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// L8: the history's directory is created 0700 and the file 0600.
    #[test]
    fn the_history_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("state/autobackup/history.jsonl");
        append(
            &path,
            &Record::Backup(Box::new(backup(1, Outcome::Success))),
        )
        .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&base.path().join("state")), 0o700);
    }

    fn backup(i: i64, outcome: Outcome) -> BackupRecord {
        BackupRecord {
            time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(i),
            category: Category::Documents,
            bucket: "b".into(),
            key: Some(format!("backups/documents/{i}.tar.gz")),
            version_id: None,
            bytes: 100 + i as u64,
            uncompressed_bytes: 1000,
            files: 3,
            duration_secs: 1.5,
            sha256: Some("ab".repeat(32)),
            crc64nvme: Some("AAAAAAAAAAA=".into()),
            s3_checksum: Some("full-object CRC64NVME matches".into()),
            kept: Some(5),
            deleted: Some(0),
            outcome,
            stage: None,
            error: None,
            anomalies: vec![],
            tool: "autobackup test".into(),
        }
    }

    #[test]
    fn append_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/history.jsonl");
        let b = Record::Backup(Box::new(backup(1, Outcome::Success)));
        let c = Record::Cost(CostRecord {
            time: Utc::now(),
            bucket: "b".into(),
            current_bytes: 1,
            noncurrent_bytes: 2,
            objects: 3,
            monthly_usd: 0.5,
            projected_12m_usd: 4.0,
            standard_12m_usd: 6.0,
            tool: "t".into(),
        });
        append(&path, &b).unwrap();
        append(&path, &c).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.records, vec![b, c]);
        assert!(loaded.skipped.is_empty());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| l.starts_with("{\"kind\":")));
    }

    #[test]
    fn missing_file_is_empty_history() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&dir.path().join("none.jsonl")).unwrap();
        assert!(loaded.records.is_empty());
    }

    #[test]
    fn torn_lines_and_unknown_kinds_are_tolerated() {
        let good =
            serde_json::to_string(&Record::Backup(Box::new(backup(2, Outcome::Success)))).unwrap();
        let text = format!("{good}\n{{\"kind\":\"backup\",\"time\n{{\"kind\":\"future\",\"x\":1}}\n[1,2]\n\n{good}\n");
        let loaded = parse(&text);
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(
            loaded.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![2, 4]
        );
    }

    #[test]
    fn filters_successes_by_category_and_bucket_in_time_order() {
        let mut other = backup(0, Outcome::Success);
        other.bucket = "other".into();
        let records = vec![
            Record::Backup(Box::new(backup(3, Outcome::Success))),
            Record::Backup(Box::new(backup(1, Outcome::Success))),
            Record::Backup(Box::new(backup(2, Outcome::Failure))),
            Record::Backup(Box::new(other)),
        ];
        let s = successful_backups(&records, Category::Documents, "b");
        assert_eq!(
            s.iter().map(|b| b.bytes).collect::<Vec<_>>(),
            vec![101, 103]
        );
        assert_eq!(
            find_key(&records, "backups/documents/3.tar.gz")
                .unwrap()
                .bytes,
            103
        );
        assert!(find_key(&records, "backups/documents/2.tar.gz").is_none());
    }

    #[test]
    fn find_backup_matches_the_bucket_too() {
        let mut other = backup(3, Outcome::Success);
        other.bucket = "other".into();
        other.sha256 = Some("other-sha".into());
        let mut mine = backup(3, Outcome::Success);
        mine.sha256 = Some("my-sha".into());
        let records = vec![
            Record::Backup(Box::new(mine)),
            Record::Backup(Box::new(other)),
        ];
        let key = "backups/documents/3.tar.gz";
        let found = find_backup(&records, "b", key).unwrap();
        assert_eq!(found.sha256.as_deref(), Some("my-sha"));
        assert!(find_backup(&records, "third", key).is_none());
    }
}
