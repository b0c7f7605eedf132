//! The replicator's state: the faults and statuses it knows, what it tracks of each
//! version, the settled versions it keeps (compactly, in its history), and when a failed
//! copy is retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::aws::Clients;
use crate::history::{key as vkey, History, Table};
use crate::observe::Observations;
use crate::topology::replication::{BucketReplication, Ineligible, Target};

/// A deliberate replication fault for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The replica never arrives; the source stays PENDING.
    Never,
    /// The replica never arrives and the source is marked FAILED.
    Failed,
    /// The replica arrives with its first byte flipped (same size).
    Corrupt,
    /// The replica arrives byte-identical but written with a different part layout.
    Relayout,
    /// The replica arrives with another part layout and its first byte flipped: the stored
    /// checksums of two layouts cannot be compared, so only deep mode's streamed hashes can
    /// tell it from a good copy.
    RelayoutCorrupt,
}

/// `x-amz-replication-status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pending,
    Completed,
    Failed,
}

impl Status {
    pub fn as_header(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
        }
    }
}

/// How long replication takes when a scenario does not say.
#[derive(Debug, Clone, Copy)]
pub struct ReplicationTiming {
    /// After the first delivery attempt of a version's event finished.
    pub lag: Duration,
    /// After discovery, for versions whose event never reaches the validator (delete
    /// markers, a paused validator).
    pub fallback: Duration,
}

/// Part size of a relayout copy: different from the 5 MiB parts clients commonly use.
pub(super) const RELAYOUT_PART: usize = 6 * 1024 * 1024;

/// A fault and the 1-based destination it hits (every one when `None`).
pub(super) type TargetedFault = (Fault, Option<usize>);

/// One source version the replicator knows.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub(super) primary: String,
    pub(super) key: String,
    pub(super) version_id: String,
    pub(super) etag: String,
    pub(super) size: i64,
    pub(super) delete_marker: bool,
    pub(super) sse_kms: bool,
    /// Destinations (empty and `ineligible` set when no rule covers it).
    pub(super) targets: Vec<Target>,
    pub(super) ineligible: Option<Ineligible>,
    pub(super) status: Option<Status>,
    /// When the copy is due; `None` while waiting for the first delivery attempt.
    pub(super) due: Option<Instant>,
    pub(super) fallback: Instant,
    /// Destinations already holding it.
    pub(super) copied: Vec<bool>,
    /// Handled for good (copied everywhere, failed, never, ineligible).
    pub(super) settled: bool,
    /// An event without a version id was matched to it (engines that omit the id).
    pub(super) claimed: bool,
    pub(super) errors: u32,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) paused: bool,
    /// key (or "*") -> delay applied to new versions of it.
    pub(super) delays: HashMap<String, Duration>,
    /// key (or "*") -> fault, and the 1-based destination it hits (all when `None`).
    pub(super) faults: HashMap<String, TargetedFault>,
    /// Versions in flight (not settled), by (primary, version id).
    pub(super) versions: HashMap<(String, String), Tracked>,
    /// Everything that outlives a version's flight, keyed by [`vkey`]: settled versions
    /// in the compact form of [`Settled`] (by (primary, version id)), each key's version
    /// ids (by (primary, key)), and the replicas' version id pairs. In memory for a
    /// scenario, in a file for `harness up` (see [`crate::history`]).
    pub(super) history: History,
    /// Versions not settled yet, in discovery order (oldest first). Settled ones leave it,
    /// so a pass costs what is in flight, not the whole history.
    pub(super) order: Vec<(String, String)>,
    pub(super) copied: usize,
}

/// What a settled version still answers for (its status in HEADs, why it is ineligible,
/// and what an event without a version id is matched on), without its strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Settled {
    pub(super) status: Option<Status>,
    pub(super) ineligible: Option<Ineligible>,
    pub(super) delete_marker: bool,
    pub(super) claimed: bool,
    pub(super) size: i64,
    /// [`hash`] of the ETag.
    pub(super) etag: u64,
}

impl Settled {
    pub(super) fn of(t: &Tracked) -> Settled {
        Settled {
            status: t.status,
            ineligible: t.ineligible,
            delete_marker: t.delete_marker,
            claimed: t.claimed,
            size: t.size,
            etag: hash(&t.etag),
        }
    }
}

impl Settled {
    /// 19 bytes: status, ineligibility, flags, size, ETag hash.
    pub(super) fn encode(&self) -> [u8; 19] {
        let mut b = [0u8; 19];
        b[0] = match self.status {
            None => 0,
            Some(Status::Pending) => 1,
            Some(Status::Completed) => 2,
            Some(Status::Failed) => 3,
        };
        b[1] = self.ineligible.map_or(0, |w| {
            1 + Ineligible::ALL
                .iter()
                .position(|x| *x == w)
                .expect("listed") as u8
        });
        b[2] = u8::from(self.delete_marker) | (u8::from(self.claimed) << 1);
        b[3..11].copy_from_slice(&self.size.to_le_bytes());
        b[11..19].copy_from_slice(&self.etag.to_le_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Option<Settled> {
        if b.len() != 19 {
            return None;
        }
        Some(Settled {
            status: match b[0] {
                0 => None,
                1 => Some(Status::Pending),
                2 => Some(Status::Completed),
                3 => Some(Status::Failed),
                _ => return None,
            },
            ineligible: match b[1] {
                0 => None,
                n => Some(*Ineligible::ALL.get(usize::from(n) - 1)?),
            },
            delete_marker: b[2] & 1 != 0,
            claimed: b[2] & 2 != 0,
            size: i64::from_le_bytes(b[3..11].try_into().ok()?),
            etag: u64::from_le_bytes(b[11..19].try_into().ok()?),
        })
    }
}

/// The 64-bit SipHash (fixed keys, so stable within a run) of `s`.
pub(super) fn hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl State {
    pub(super) fn knows(&self, primary: &str, version_id: &str) -> bool {
        self.history
            .contains(Table::Settled, vkey(primary, version_id))
            || self
                .versions
                .contains_key(&(primary.to_string(), version_id.to_string()))
    }

    pub(super) fn settled(&self, bucket: &str, version_id: &str) -> Option<Settled> {
        Settled::decode(&self.history.get(Table::Settled, vkey(bucket, version_id))?)
    }

    pub(super) fn settle(&mut self, bucket: &str, version_id: &str, s: Settled) {
        self.history
            .put(Table::Settled, vkey(bucket, version_id), &s.encode());
    }

    /// The version ids of `key` in discovery order (each as a u16 length and its bytes).
    pub(super) fn versions_of(&self, bucket: &str, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        let Some(b) = self.history.get(Table::KeyVersions, vkey(bucket, key)) else {
            return out;
        };
        let mut rest = &b[..];
        while rest.len() >= 2 {
            let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let Some(id) = rest.get(2..2 + n) else { break };
            out.push(String::from_utf8_lossy(id).into_owned());
            rest = &rest[2 + n..];
        }
        out
    }

    pub(super) fn add_version(&mut self, bucket: &str, key: &str, version_id: &str) {
        let k = vkey(bucket, key);
        let mut b = self.history.get(Table::KeyVersions, k).unwrap_or_default();
        let id = &version_id.as_bytes()[..version_id.len().min(usize::from(u16::MAX))];
        b.extend_from_slice(&(id.len() as u16).to_le_bytes());
        b.extend_from_slice(id);
        self.history.put(Table::KeyVersions, k, &b);
    }

    pub(super) fn text(&self, table: Table, bucket: &str, id: &str) -> Option<String> {
        let b = self.history.get(table, vkey(bucket, id))?;
        String::from_utf8(b).ok()
    }

    /// Records that `engine_id` in `replica` is the copy of source version `source_id`.
    pub(super) fn map_ids(&mut self, replica: &str, source_id: &str, engine_id: &str) {
        self.history.put(
            Table::EngineIds,
            vkey(replica, source_id),
            engine_id.as_bytes(),
        );
        self.history.put(
            Table::SourceIds,
            vkey(replica, engine_id),
            source_id.as_bytes(),
        );
    }
}

/// Emulated S3 replication for a set of primary buckets.
pub struct Replicator {
    pub(super) clients: Clients,
    pub(super) configs: HashMap<String, BucketReplication>,
    pub(super) timing: ReplicationTiming,
    pub(super) state: Mutex<State>,
    /// Serialises passes so a version is never copied twice.
    pub(super) pass_lock: Mutex<()>,
    /// The fidelity layer's default checksums, where it adds them.
    pub(super) default_checksums:
        std::sync::Mutex<Option<Arc<crate::fidelity::checksums::DefaultChecksums>>>,
    /// Where each copy's arrival is recorded ([`Observation::Replica`]), once set.
    pub(super) observer: std::sync::Mutex<Option<Observations>>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator")
            .field("primaries", &self.configs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How long [`Replicator::ensure_known`] looks for a version before its last resort.
pub const ENSURE_KNOWN_FOR: Duration = Duration::from_secs(2);

/// How often the replicator lists every version of every primary.
pub const FULL_DISCOVERY_EVERY: Duration = Duration::from_secs(5);

/// The largest share of the replicator's time the full listing may take (see
/// [`Replicator::run`]).
pub const FULL_DISCOVERY_SHARE: f64 = 0.1;

/// Copy attempts of one version before it is FAILED.
pub const MAX_COPY_ATTEMPTS: u32 = 8;

/// When to retry a copy after its `errors`-th failure: exponential from 500 ms, capped at
/// 30 s, with ±20 % jitter (`jitter` in 0..1) so failing versions do not retry in lockstep;
/// `None` once [`MAX_COPY_ATTEMPTS`] have failed.
pub fn retry_after(errors: u32, jitter: f64) -> Option<Duration> {
    if errors >= MAX_COPY_ATTEMPTS {
        return None;
    }
    let base = Duration::from_millis(500)
        .saturating_mul(1 << errors.min(6))
        .min(Duration::from_secs(30));
    Some(base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}
